"""The API's JSON, written by orjson.

DRF's renderer writes with the standard library's encoder: a page of twenty trips took
it about 100 µs of CPU, orjson 7 µs, the same bytes; and orjson writes a time in a
fraction of what Python's `isoformat` costs, so the trip list leaves its times to it
(docs/benchmarks.md, finding 73).

The output is DRF's for every value it writes alike, times included (ISO 8601, "Z" for
UTC), which is everything the API sends but two kinds of number: a float below 1e-4 is
written as a decimal (0.00001, where DRF writes 1e-05), and NaN or an infinity, which
DRF refuses to write, as null. Whatever orjson cannot write (an integer beyond 64 bits,
a key that is not a string, a value only DRF's encoder knows) goes to DRF's renderer
whole, as does every request for indented or ASCII-only JSON.
"""

import orjson
from rest_framework import renderers

# Times with "Z" for UTC, as DRF's encoder writes them; dataclasses to that encoder,
# which refuses them as DRF does.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_PASSTHROUGH_DATACLASS


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None or self.ensure_ascii or not self.compact:
            return super().render(data, accepted_media_type, renderer_context)
        if self.get_indent(accepted_media_type, renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            rendered = orjson.dumps(data, default=self.encoder_class().default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().render(data, accepted_media_type, renderer_context)
        # As DRF: the two characters JSON allows in strings and JavaScript does not.
        return rendered.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
