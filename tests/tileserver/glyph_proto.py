"""glyphs.proto (the MapLibre glyph PBF message) built at run time, to decode with protobuf."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _message_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(
        name="fondplan_test_glyphs.proto", package="fondplan_test.glyphs", syntax="proto2"
    )
    glyph = proto.message_type.add(name="glyph")
    for name, number, kind, label in [
        ("id", 1, _F.TYPE_UINT32, _F.LABEL_REQUIRED),
        ("bitmap", 2, _F.TYPE_BYTES, _F.LABEL_OPTIONAL),
        ("width", 3, _F.TYPE_UINT32, _F.LABEL_REQUIRED),
        ("height", 4, _F.TYPE_UINT32, _F.LABEL_REQUIRED),
        ("left", 5, _F.TYPE_SINT32, _F.LABEL_REQUIRED),
        ("top", 6, _F.TYPE_SINT32, _F.LABEL_REQUIRED),
        ("advance", 7, _F.TYPE_UINT32, _F.LABEL_REQUIRED),
    ]:
        glyph.field.add(name=name, number=number, type=kind, label=label)
    stack = proto.message_type.add(name="fontstack")
    stack.field.add(name="name", number=1, type=_F.TYPE_STRING, label=_F.LABEL_REQUIRED)
    stack.field.add(name="range", number=2, type=_F.TYPE_STRING, label=_F.LABEL_REQUIRED)
    glyphs = proto.message_type.add(name="glyphs")
    for message, name, number, item in (
        (stack, "glyphs", 3, "glyph"),
        (glyphs, "stacks", 1, "fontstack"),
    ):
        message.field.add(
            name=name,
            number=number,
            type=_F.TYPE_MESSAGE,
            label=_F.LABEL_REPEATED,
            type_name=f".fondplan_test.glyphs.{item}",
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("fondplan_test.glyphs.glyphs")
    )


GLYPHS = _message_class()


def decode(data: bytes) -> Any:
    """Parse a glyph PBF; raises if a required field is missing."""
    message = GLYPHS()
    message.ParseFromString(data)
    assert message.IsInitialized()
    return message
