from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "first_name", "last_name", "role", "is_active", "is_staff")
    list_filter = ("role", "is_active", "is_staff")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Taxi", {"fields": ("role", "photo")}),
    )
    add_fieldsets = (
        *DjangoUserAdmin.add_fieldsets,
        ("Taxi", {"fields": ("role",)}),
    )
