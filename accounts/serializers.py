from django.contrib.auth import password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import User


def user_representation(user: User) -> dict:
    """The public profile as every client reads it, built directly: it is part of every
    trip event and snapshot, where DRF's fields cost many times more. `UserSerializer`
    describes the same shape (and the tests hold the two equal)."""
    return {
        "id": user.id,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "group": user.role,
        "photo": user.photo_url,
    }


class UserSerializer(serializers.ModelSerializer):
    group = serializers.CharField(source="role", read_only=True)
    photo = serializers.CharField(source="photo_url", read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name", "group", "photo"]
        read_only_fields = fields


class SignUpSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    password1 = serializers.CharField(write_only=True, style={"input_type": "password"})
    password2 = serializers.CharField(write_only=True, style={"input_type": "password"})
    group = serializers.ChoiceField(choices=User.Role.choices)
    photo = serializers.ImageField(required=False, allow_null=True)

    def validate(self, attrs):
        if attrs["password1"] != attrs["password2"]:
            raise serializers.ValidationError({"password2": ["The two passwords differ."]})
        candidate = User(
            username=attrs["username"],
            first_name=attrs.get("first_name", ""),
            last_name=attrs.get("last_name", ""),
        )
        try:
            password_validation.validate_password(attrs["password1"], user=candidate)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"password1": list(error.messages)}) from error
        return attrs


class LogInSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LogOutSerializer(serializers.Serializer):
    refresh = serializers.CharField(required=False)


class ProfileUpdateSerializer(serializers.Serializer):
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True)
    photo = serializers.ImageField(required=False)
