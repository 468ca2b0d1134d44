"""The /taxi/ socket: one consumer for both dialects.

The consumer authenticates, reads frames into commands, hands trip commands to the trip
services on a worker thread, and turns channel-layer events into its protocol's
messages. It keeps only what it must to route events: whether its driver is open for
requests and which trip they are driving.
"""

import asyncio
import contextlib
import logging
import time
from functools import partial

import orjson
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from rest_framework_simplejwt.tokens import Token
from uvicorn.protocols.utils import ClientDisconnected

from accounts.models import User
from accounts.serializers import user_representation
from config.exceptions import DomainError
from config.hot_settings import hot_settings
from config.tasks import stopped
from dispatch import services as dispatch
from dispatch.location_index import location_index
from dispatch.positions import AcceptedPosition
from dispatch.tracking import last_positions, position_share
from realtime.auth import SocketAuth, TokenClaims, token_user_and_trips
from realtime.commands import SessionEnded, acting_user, command_execute
from realtime.database import db
from realtime.delivery import AVAILABLE_DRIVERS, DRIVERS_STILL_OFFERED, user_group
from realtime.limits import MessageRate, sockets_per_user
from realtime.protocols import (
    NATIVE_SUBPROTOCOL,
    Command,
    CourseProtocol,
    Echo,
    NativeProtocol,
    ProtocolError,
    ReportPosition,
    SetOnline,
)
from trips.events import Origin, TripEvent, trip_payload
from trips.models import Trip
from trips.selectors import trips_active_for
from trips.trail import trail_head_start, trip_trail_record

logger = logging.getLogger(__name__)

# Closed because the credentials ended: expired token, logged out, deactivated.
CLOSE_SESSION_ENDED = 4001
# Gone with no close frame heard.
CLOSE_ABNORMALLY = 1006
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
# Enough for every offer a driver could still be looking at.
OFFERS_REMEMBERED = 256


class InternalError(DomainError):
    code = "internal"


def _may_connect(user) -> bool:
    return user.is_authenticated and (user.is_rider or user.is_driver)


def _connection_state(user: User | Token) -> dict | None:
    """What a socket starts from: its user, and their active trips. A token's session
    and user are confirmed here, in the same thread hop; None if they do not hold, or
    the user may not connect."""
    if isinstance(user, Token):
        confirmed = token_user_and_trips(user)
        if confirmed is None or not _may_connect(confirmed[0]):
            return None
        user, active = confirmed
    else:
        active = trips_active_for(user)
    trips = sorted(active, key=lambda trip: trip.created, reverse=True)
    driving = next(
        (
            trip
            for trip in trips
            if trip.driver_id == user.id and trip.status in Trip.DRIVER_ACTIVE_STATUSES
        ),
        None,
    )
    return {
        "user": user,
        "representation": user_representation(user),
        "trips": [trip_payload(trip) for trip in trips],
        "driving": (str(driving.id), driving.rider_id) if driving else (None, None),
        "driven": [str(trip.id) for trip in trips if trip.driver_id is not None],
    }


def _may_go_online(user: User) -> bool:
    try:
        dispatch.driver_online_check(user)
    except DomainError:
        return False
    return True


class TripConsumer(AsyncWebsocketConsumer):
    # Who the socket counts against (`sockets_per_user`), from its admission on.
    admitted: int | None = None
    # Who the socket is, once confirmed; None again once it has ended.
    user: User | None = None
    expiry: asyncio.TimerHandle | None = None
    driving: str | None = None
    online = False

    async def connect(self):
        # A token's claims are confirmed with the socket's state below; a ticket or a
        # cookie has confirmed its user already.
        claims: TokenClaims | None = self.scope.get("claims")
        user = self.scope.get("user")
        if claims is not None:
            user_id = claims.user_id
        elif user is not None and _may_connect(user):
            user_id = user.id
        else:
            await self.close()
            return
        if not sockets_per_user.admit(user_id, settings.WEBSOCKET_MAX_SOCKETS_PER_USER):
            await self.close()
            return
        self.admitted = user_id
        self.joined: set[str] = set()
        self.rate = MessageRate(
            settings.WEBSOCKET_MESSAGES_PER_SECOND, settings.WEBSOCKET_MESSAGE_BURST
        )
        subprotocols = self.scope.get("subprotocols") or []
        self.protocol = NativeProtocol() if NATIVE_SUBPROTOCOL in subprotocols else CourseProtocol()
        auth: SocketAuth = self.scope.get("auth") or SocketAuth()

        # Join before reading the state, so no change can fall between the two, and
        # accept only then, so a client that hears "connected" is already listening.
        self.session_id = auth.session_id
        await self._join(user_group(user_id))
        state = await db(_connection_state)(claims.take() if claims else user)
        if state is None:
            await self.disconnect(CLOSE_ABNORMALLY)  # leaves its groups, counts no more
            await self.close()
            return
        user = self.user = state["user"]
        self.driving, self.driving_rider = state["driving"]
        self.dropped: str | None = None
        # The offers this socket showed, oldest first, to tell it when they are over.
        self.offers_heard: dict[str, None] = {}
        self.last_position: AcceptedPosition | None = None
        self.trail: list[AcceptedPosition] = []
        self.trail_head_start = trail_head_start()
        # The latest position shared with the rider but not yet kept as the trip's last
        # known one, and when the next may be kept (see LAST_POSITION_KEEP_SECONDS).
        self.unkept: dict | None = None
        self.keep_after = 0.0
        # The user was read from the database for this handshake: no query needed.
        self.online = (
            user.is_driver and self.protocol.drivers_online_on_connect and _may_go_online(user)
        )
        await self._sync_availability()
        snapshot = self.protocol.snapshot(
            user=state["representation"],
            trips=state["trips"],
            online=self.online,
            positions=await last_positions().positions_of(state["driven"]),
        )
        # The snapshot is ready before the accept, so the two go out in one write (see
        # config.websocket).
        await self.accept(subprotocol=self.protocol.subprotocol)
        if snapshot is not None:
            await self._send(snapshot)
        if auth.expires_at is not None:
            delay = max(0.0, auth.expires_at - time.time())
            self.expiry = asyncio.get_running_loop().call_later(delay, self._credentials_expired)

    async def disconnect(self, code):
        if self.admitted is None:
            return
        if self.expiry is not None:
            self.expiry.cancel()
        try:
            if self.driving is not None:
                await self._positions_flush()
            if self.online:
                await location_index().driver_remove(self.admitted)
            for group in self.joined:
                await self.channel_layer.group_discard(group, self.channel_name)
        finally:
            # Whatever failed above, the socket no longer counts against its user.
            sockets_per_user.release(self.admitted)
            self.admitted = self.user = None

    # --- From the client ------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.user is None:
            return
        size = len(bytes_data or b"") if text_data is None else len(text_data.encode())
        if size > hot_settings.WEBSOCKET_MAX_MESSAGE_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        if not self.rate.allow():
            await self._refuse(
                ProtocolError("Too many messages; slow down.", code="rate_limited"), None
            )
            return
        if text_data is None:
            await self._refuse(ProtocolError("Send JSON in text frames."), None)
            return
        command = None
        try:
            command = self.protocol.parse(text_data, user_id=self.user.id)
            await self._execute(command)
        except ProtocolError as error:
            await self._refuse(error, error.request or command)
        except DomainError as error:
            await self._refuse(error, command)
        except SessionEnded:
            await self.close(code=CLOSE_SESSION_ENDED)
        except Exception:
            logger.exception("Failed to handle a message from user %s", self.user.id)
            await self._refuse(InternalError("The server failed; nothing was changed."), command)

    async def _execute(self, command: Command) -> None:
        match command:
            case Echo():
                await self._send(self.protocol.echo(command))
            case SetOnline(online=online):
                if online:
                    await db(lambda: dispatch.driver_online_check(acting_user(self.user.id)))()
                else:
                    dispatch.driver_offline_check(self.user)
                    await location_index().driver_remove(self.user.id)
                # Every socket of the driver goes on or off line together.
                status = {
                    "type": "driver.status",
                    "online": online,
                    "origin": self.channel_name,
                    "request_id": command.request_id,
                }
                await self.channel_layer.group_send(user_group(self.user.id), status)
            case ReportPosition():
                await self._position_report(command)
            case _:
                if self.driving is not None:
                    # The trail must be complete before a step that measures it.
                    await self._positions_flush()
                origin = Origin(self.channel_name, command.request_id)
                user = await db(command_execute)(self.user, command, origin)
                if self.user is not None:  # unless the socket closed meanwhile
                    self.user = user

    async def _position_report(self, command: ReportPosition) -> None:
        """A driver's position: on a trip it goes to the rider and the trail; otherwise
        it places an online driver in the index that dispatch searches."""
        position = dispatch.driver_position_accept(
            driver=self.user, report=command.report, previous=self.last_position
        )
        self.last_position = position
        if self.driving is not None:
            keep = position.received_at >= self.keep_after
            payload = await position_share(
                trip_id=self.driving,
                driver_id=self.user.id,
                rider_id=self.driving_rider,
                position=position,
                keep=keep,
            )
            if keep:
                self.keep_after = position.received_at + hot_settings.LAST_POSITION_KEEP_SECONDS
            self.unkept = None if keep else payload
            self.trail.append(position)
            if len(self.trail) + self.trail_head_start >= hot_settings.TRAIL_BATCH_SIZE:
                await self._positions_flush()
        elif self.online:
            await location_index().driver_position_set(
                self.user.id, position.lat, position.lng, at=position.received_at
            )

    async def _positions_flush(self) -> None:
        """Write what the socket holds of the trip it drives: its trail, and its latest
        position if that is not yet kept as the trip's last known one."""
        if self.unkept is not None:
            payload, self.unkept = self.unkept, None
            await last_positions().position_keep(self.driving, payload)
        if self.trail:
            positions, self.trail, self.trail_head_start = self.trail, [], 0
            await db(trip_trail_record)(trip_id=self.driving, positions=positions)

    # --- From the channel layer -------------------------------------------------------------

    async def trip_event(self, message):
        kind, trip = message["kind"], message["trip"]
        if self.user.is_driver:
            await self._follow_driving(trip)
            hears = self._hears_as_driver(kind, trip)
            if not self._offers_open():
                await self._leave(DRIVERS_STILL_OFFERED)
            if not hears:
                return
        request_id = message["request_id"] if message["origin"] == self.channel_name else None
        reply = self.protocol.event(kind, trip, request_id)
        if reply is not None:
            await self._send(reply)

    async def driver_status(self, message):
        if self.protocol.drivers_online_on_connect:
            return  # a course socket is open for requests while it is open
        self.online = message["online"]
        await self._sync_availability()
        request_id = message["request_id"] if message["origin"] == self.channel_name else None
        reply = self.protocol.driver_status(self.online, request_id)
        if reply is not None:
            await self._send(reply)

    async def driver_location(self, message):
        reply = self.protocol.driver_location(message["position"])
        if reply is not None:
            await self._send(reply)

    async def session_end(self, message):
        ended = message.get("sessions")  # None: every session of the user
        if ended is None or self.session_id in ended:
            await self.close(code=CLOSE_SESSION_ENDED)

    # --- Driver availability ------------------------------------------------------------

    async def _follow_driving(self, trip: dict) -> None:
        """Keep `driving` in step with the trip events this driver hears."""
        mine = (trip.get("driver") or {}).get("id") == self.user.id
        if mine and trip["status"] in Trip.DRIVER_ACTIVE_STATUSES:
            if self.driving != trip["id"]:
                await self._positions_flush()  # of the trip before, if it did not end
                self.driving, self.driving_rider = trip["id"], trip["rider"]["id"]
                self.keep_after = 0.0  # the trip's first position is kept at once
                # The accept took the driver out of the index as it committed
                # (`dispatch.services.trip_offers_close`), but a position this socket
                # read before hearing of the trip may have put them back.
                await location_index().driver_remove(self.user.id)
        elif trip["id"] == self.driving:
            if trip["status"] == Trip.Status.REQUESTED:
                self.dropped = trip["id"]  # not to be offered again the trip they left
            else:
                self.offers_heard.pop(trip["id"], None)  # over: its offer cannot end now
            await self._positions_flush()
            self.driving = self.driving_rider = None
        else:
            return
        await self._sync_availability()

    def _hears_as_driver(self, kind: str, trip: dict) -> bool:
        """Offers reach a driver open for requests; that an offer is over reaches those
        who heard the offer, whether or not they are still open for requests."""
        own_trip = (trip.get("driver") or {}).get("id") == self.user.id
        if kind == TripEvent.OFFERED:
            if not self.online or self.driving is not None or trip["id"] == self.dropped:
                return False
            self.offers_heard[trip["id"]] = None
            while len(self.offers_heard) > OFFERS_REMEMBERED:
                del self.offers_heard[next(iter(self.offers_heard))]
            return True
        if kind == TripEvent.TAKEN and own_trip:
            return False  # this driver's own accept; they hear it as trip.accepted
        if kind in (TripEvent.TAKEN, TripEvent.CANCELED) and not own_trip:
            return self.offers_heard.pop(trip["id"], False) is None
        return True

    async def _sync_availability(self) -> None:
        # Joins come before leaves, so that no end of an offer falls between the two.
        if self.online and self.driving is None:
            await self._join(AVAILABLE_DRIVERS)
            await self._leave(DRIVERS_STILL_OFFERED)
        else:
            if self._offers_open():
                await self._join(DRIVERS_STILL_OFFERED)
            await self._leave(AVAILABLE_DRIVERS)

    def _offers_open(self) -> bool:
        """Whether an offer this socket showed may yet end, besides the trip it drives."""
        return any(trip_id != self.driving for trip_id in self.offers_heard)

    # --- Plumbing -------------------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        # As in Channels, but without its loop (`await_many_dispatch`), which makes a
        # task and waits on two for every message: two long-lived readers, the client's
        # in the socket's own task and the channel layer's in one more, take turns to
        # handle what they read, so the socket still handles one message at a time,
        # each source's in order. (A task of its own for each, in a task group, cost a
        # socket about 2 KB more: docs/benchmarks.md, finding 50.)
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        turn = asyncio.Lock()

        async def read(source):
            while True:
                message = await source()
                async with turn:
                    await self.dispatch(message)

        layer_reader = asyncio.create_task(self._events_read(read))
        try:
            await read(receive)
        except (StopConsumer, ClientDisconnected):
            # ClientDisconnected: uvicorn's `send` says the client has gone before its
            # disconnect is read: the end of a socket, not an error of the server's.
            pass
        finally:
            # Again and again if need be: a handler in a redis-py call can lose the
            # cancel (`config.tasks.stopped`), and the socket would then never leave.
            await stopped(layer_reader)
            # However the socket ended, it leaves its groups, goes offline and stops
            # counting against its user (nothing left to do if its disconnect was read).
            await self.disconnect(CLOSE_ABNORMALLY)

    async def _events_read(self, read) -> None:
        """Read and handle the channel layer's events until the socket ends. A failure
        closes the socket: its client's reader then hears the disconnect."""
        try:
            await read(partial(self.channel_layer.receive, self.channel_name))
        except ClientDisconnected:
            pass  # the client's reader hears of it
        except Exception:
            logger.exception("Failed to handle an event for socket %s", self.channel_name)
            with contextlib.suppress(ClientDisconnected):
                await self.close(code=CLOSE_INTERNAL_ERROR)

    async def dispatch(self, message):
        # Channels closes stale database connections before handling every message, on
        # its one sync thread: a thread hop for each position and each event, with all
        # of a process's sockets queueing for that thread. This consumer never touches
        # the database on the event loop; `db()` returns each connection as its work
        # ends, so there is nothing to close.
        if self.user is None and not message["type"].startswith("websocket."):
            return  # an event for a socket refused, or ended, since its groups heard it
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message):
        # As in Channels, without its closing hop (see `dispatch`); this consumer
        # leaves its groups in `disconnect`.
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def _join(self, group: str) -> None:
        if group not in self.joined:
            self.joined.add(group)
            await self.channel_layer.group_add(group, self.channel_name)

    async def _leave(self, group: str) -> None:
        if group in self.joined:
            self.joined.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _send(self, message: dict) -> None:
        # orjson: a trip event in a tenth of the standard library's time (finding 73).
        await self.send(text_data=orjson.dumps(message).decode())

    async def _refuse(self, error: DomainError, command: Command | None) -> None:
        await self._send(self.protocol.error(error, command))

    def _credentials_expired(self) -> None:
        self.closing = asyncio.ensure_future(self.close(code=CLOSE_SESSION_ENDED))
