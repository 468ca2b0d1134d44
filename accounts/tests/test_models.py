import weakref

import pytest

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_a_photo_is_served_where_its_stored_name_says(make_user):
    with_photo, without = make_user("driver", photo="photos/face.png"), make_user("rider")

    read = User.objects.get(id=with_photo.id)
    assert read.photo_url == "/media/photos/face.png" == read.photo.url
    assert User.objects.get(id=without.id).photo_url is None
    # Read before the file object is made, and after.
    assert read.photo_url == "/media/photos/face.png"


def test_a_photo_left_out_of_a_read_is_read_when_asked_for(make_user):
    user = make_user("driver", photo="photos/face.png")

    assert User.objects.only("id").get(id=user.id).photo_url == "/media/photos/face.png"


def test_a_user_whose_photo_was_asked_for_is_freed_without_the_collector(make_user, no_collector):
    user = make_user("driver", photo="photos/face.png")
    read = User.objects.get(id=user.id)
    gone = weakref.ref(read)

    assert read.photo_url == "/media/photos/face.png"
    del read

    assert gone() is None
