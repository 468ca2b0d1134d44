from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts import services
from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "first_name", "last_name", "role", "is_active", "is_staff")
    list_filter = (
        "role",
        "is_active",
        "is_staff",
        ("driver_approved_at", admin.EmptyFieldListFilter),
    )
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Taxi", {"fields": ("role", "photo", "driver_approved_at")}),
    )
    actions = ("approve_drivers",)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            services.user_sockets_close(user=obj)

    @admin.action(description="Approve the selected drivers")
    def approve_drivers(self, request, queryset):
        approved = services.drivers_approve(drivers=queryset)
        self.message_user(request, f"{approved} driver(s) approved.")

    add_fieldsets = (
        *DjangoUserAdmin.add_fieldsets,
        ("Taxi", {"fields": ("role",)}),
    )
