from django.contrib import admin

from trips.models import Trip


@admin.register(Trip)
class TripAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "rider", "driver", "pick_up_address", "created")
    list_filter = ("status", "cancel_reason", "created")
    search_fields = ("id", "pick_up_address", "drop_off_address", "rider__username")
    list_select_related = ("rider", "driver")
    raw_id_fields = ("rider", "driver")
    date_hierarchy = "created"
    readonly_fields = (
        "id",
        "created",
        "updated",
        "requested_at",
        "accepted_at",
        "picked_up_at",
        "completed_at",
        "canceled_at",
        "distance_m",
    )
