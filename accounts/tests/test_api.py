import io

import jwt
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts.models import User
from accounts.serializers import UserSerializer, user_representation
from conftest import PASSWORD

pytestmark = pytest.mark.django_db

SIGN_UP = "/api/sign_up/"
LOG_IN = "/api/log_in/"
REFRESH = "/api/token/refresh/"
LOG_OUT = "/api/log_out/"
ME = "/api/me/"


def png(name="photo.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "yellow").save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def sign_up_form(**overrides):
    form = {
        "username": "ada",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "group": "rider",
    }
    form.update(overrides)
    return form


class TestSignUp:
    def test_json_sign_up_returns_the_course_shape_without_password(self, api_client):
        response = api_client.post(SIGN_UP, sign_up_form(), format="json")

        assert response.status_code == 201
        body = response.json()
        user = User.objects.get(username="ada")
        assert body == {
            "id": user.id,
            "username": "ada",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "group": "rider",
            "photo": None,
        }
        assert user.role == "rider"
        assert user.check_password(PASSWORD)
        assert PASSWORD not in response.content.decode()

    def test_multipart_sign_up_with_photo(self, api_client):
        response = api_client.post(
            SIGN_UP, sign_up_form(group="driver", photo=png()), format="multipart"
        )

        assert response.status_code == 201
        user = User.objects.get(username="ada")
        assert user.role == "driver"
        assert response.json()["photo"] == user.photo.url
        assert user.photo.url.startswith("/media/photos/")

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"password2": "another-horse-battery"}, "password2"),
            ({"password1": "12345678", "password2": "12345678"}, "password1"),
            ({"password1": "short", "password2": "short"}, "password1"),
            ({"group": "admin"}, "group"),
            ({"group": ""}, "group"),
            ({"username": ""}, "username"),
            ({"username": "no spaces allowed"}, "username"),
        ],
    )
    def test_refusals_name_the_field_and_create_nobody(self, api_client, overrides, field):
        response = api_client.post(SIGN_UP, sign_up_form(**overrides), format="json")

        assert response.status_code == 400
        assert field in response.json()
        assert all(isinstance(message, str) for message in response.json()[field])
        assert not User.objects.exists()

    def test_a_photo_that_is_not_an_image_is_refused(self, api_client):
        fake = SimpleUploadedFile("photo.png", b"not an image", content_type="image/png")
        response = api_client.post(SIGN_UP, sign_up_form(photo=fake), format="multipart")

        assert response.status_code == 400
        assert "photo" in response.json()
        assert not User.objects.exists()

    def test_username_taken_regardless_of_case(self, api_client, make_user):
        make_user(username="Ada")

        response = api_client.post(SIGN_UP, sign_up_form(username="aDA"), format="json")

        assert response.status_code == 400
        assert "username" in response.json()
        assert User.objects.count() == 1


class TestLogIn:
    def test_log_in_returns_tokens_whose_payload_carries_the_profile(self, api_client, rider):
        response = api_client.post(
            LOG_IN, {"username": rider.username, "password": PASSWORD}, format="json"
        )

        assert response.status_code == 200
        tokens = response.json()
        assert set(tokens) == {"access", "refresh"}
        payload = jwt.decode(tokens["access"], options={"verify_signature": False})
        assert payload["id"] == rider.id
        assert payload["username"] == rider.username
        assert payload["first_name"] == rider.first_name
        assert payload["last_name"] == rider.last_name
        assert payload["group"] == "rider"
        assert payload["photo"] is None
        assert payload["token_type"] == "access"

    def test_username_case_does_not_matter(self, api_client, make_user):
        make_user(username="Grace")

        response = api_client.post(
            LOG_IN, {"username": "grace", "password": PASSWORD}, format="json"
        )

        assert response.status_code == 200

    @pytest.mark.parametrize(
        "credentials",
        [
            {"username": "rider-name", "password": "wrong-password"},
            {"username": "nobody", "password": PASSWORD},
        ],
    )
    def test_refused_log_in_is_a_400_under_all(self, api_client, make_user, credentials):
        make_user(username="rider-name")

        response = api_client.post(LOG_IN, credentials, format="json")

        assert response.status_code == 400
        errors = response.json()["__all__"]
        assert isinstance(errors, list) and errors and isinstance(errors[0], str)

    def test_inactive_user_cannot_log_in(self, api_client, make_user):
        user = make_user(is_active=False)

        response = api_client.post(
            LOG_IN, {"username": user.username, "password": PASSWORD}, format="json"
        )

        assert response.status_code == 400

    def test_missing_fields_are_field_errors(self, api_client):
        response = api_client.post(LOG_IN, {}, format="json")

        assert response.status_code == 400
        assert set(response.json()) == {"username", "password"}

    def test_throttled_after_too_many_attempts(self, api_client, rider, settings):
        settings.LOGIN_THROTTLE_RATE = "3/minute"
        from django.core.cache import cache

        cache.clear()
        wrong = {"username": rider.username, "password": "wrong-password"}
        statuses = [api_client.post(LOG_IN, wrong, format="json").status_code for _ in range(4)]

        assert statuses == [400, 400, 400, 429]


def log_in(api_client, user) -> dict:
    response = api_client.post(LOG_IN, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200
    return response.json()


class TestRefreshAndLogOut:
    def test_refresh_rotates_and_blacklists_the_old_token(self, api_client, rider):
        tokens = log_in(api_client, rider)

        first = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
        again = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")

        assert first.status_code == 200
        assert set(first.json()) == {"access", "refresh"}
        assert first.json()["refresh"] != tokens["refresh"]
        assert again.status_code == 401
        payload = jwt.decode(first.json()["access"], options={"verify_signature": False})
        assert payload["username"] == rider.username

    def test_log_out_ends_the_refresh_token_and_its_access_tokens(self, api_client, rider):
        tokens = log_in(api_client, rider)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        assert api_client.get(ME).status_code == 200

        response = api_client.post(LOG_OUT, {"refresh": tokens["refresh"]}, format="json")

        assert response.status_code == 204
        assert api_client.get(ME).status_code == 401
        api_client.credentials()
        refreshed = api_client.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
        assert refreshed.status_code == 401

    def test_log_out_leaves_other_sessions_alone(self, api_client, rider, client_for):
        laptop = client_for(rider)
        tokens = log_in(api_client, rider)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")

        api_client.post(LOG_OUT, {"refresh": tokens["refresh"]}, format="json")

        assert laptop.get(ME).status_code == 200

    def test_cannot_log_out_another_users_session(self, api_client, rider, make_user, client_for):
        victim = make_user("driver")
        victim_tokens = log_in(api_client, victim)

        response = client_for(rider).post(
            LOG_OUT, {"refresh": victim_tokens["refresh"]}, format="json"
        )

        assert response.status_code == 400
        assert "refresh" in response.json()
        refreshed = api_client.post(REFRESH, {"refresh": victim_tokens["refresh"]}, format="json")
        assert refreshed.status_code == 200

    def test_garbage_refresh_token_is_a_field_error(self, client_for, rider):
        response = client_for(rider).post(LOG_OUT, {"refresh": "garbage"}, format="json")

        assert response.status_code == 400
        assert "refresh" in response.json()

    def test_log_out_needs_authentication(self, api_client):
        assert api_client.post(LOG_OUT, {}, format="json").status_code == 401

    def test_log_out_ends_a_web_session(self, client, rider):
        client.force_login(rider)
        assert client.get(ME).status_code == 200

        assert client.post(LOG_OUT).status_code == 204
        assert client.get(ME).status_code == 401


class TestProfile:
    def test_me_needs_authentication(self, api_client):
        assert api_client.get(ME).status_code == 401

    def test_me_shows_the_users_own_profile(self, client_for, driver):
        response = client_for(driver).get(ME)

        assert response.status_code == 200
        assert response.json()["username"] == driver.username
        assert response.json()["group"] == "driver"

    def test_patch_changes_names_and_photo_only(self, client_for, rider):
        response = client_for(rider).patch(
            ME,
            {"first_name": "Grace", "photo": png(), "username": "hijack", "group": "driver"},
            format="multipart",
        )

        assert response.status_code == 200
        rider.refresh_from_db()
        assert rider.first_name == "Grace"
        assert rider.photo.name.startswith("photos/")
        assert rider.username != "hijack"
        assert rider.role == "rider"
        assert response.json()["photo"] == rider.photo.url

    def test_patch_refuses_a_bad_photo(self, client_for, rider):
        fake = SimpleUploadedFile("x.png", b"nope", content_type="image/png")

        response = client_for(rider).patch(ME, {"photo": fake}, format="multipart")

        assert response.status_code == 400
        rider.refresh_from_db()
        assert not rider.photo


def test_session_log_in_works_for_the_browsable_api(client, rider):
    assert client.login(username=rider.username, password=PASSWORD)

    response = client.get("/api/trip/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert b"Trip" in response.content


def test_admin_lists_users(client, make_user):
    admin = make_user(is_staff=True, is_superuser=True)
    client.force_login(admin)

    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get("/admin/trips/trip/?status__exact=REQUESTED").status_code == 200


def test_the_hand_built_profile_says_what_drf_fields_would(rider, driver):
    for user in (rider, driver):
        assert user_representation(user) == UserSerializer(user).data


class TestTokenUser:
    """Every request with a token reads its user (`RevocableJWTAuthentication`)."""

    def test_a_deactivated_user_s_token_is_refused(self, client_for, rider):
        client = client_for(rider)
        User.objects.filter(id=rider.id).update(is_active=False)

        response = client.get(ME)

        assert response.status_code == 401
        assert response.json() == {"detail": "User is inactive"}

    def test_a_deleted_user_s_token_is_refused(self, client_for, rider):
        client = client_for(rider)
        rider.delete()

        response = client.get(ME)

        assert response.status_code == 401
        assert response.json() == {"detail": "User not found"}

    def test_a_token_naming_no_user_is_refused(self, api_client, rider):
        from rest_framework_simplejwt.tokens import AccessToken

        token = AccessToken.for_user(rider)
        del token["id"]
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

        response = api_client.get(ME)

        assert response.status_code == 401
        assert response.json()["code"] == "token_not_valid"
