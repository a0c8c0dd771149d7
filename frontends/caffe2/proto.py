"""Caffe2's protobuf messages, built at run time from a descriptor declared here.

No installable package ships Caffe2's generated classes for current protobuf, and convertkit must not
need protoc or a Caffe2 install, so the messages of ``caffe2/proto/caffe2.proto`` that model files use
are described field by field (same names and numbers) in a ``FileDescriptorProto`` and turned into
classes with ``message_factory``. Works on protobuf 3.20 through 7.
"""
from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP, _REQ = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED, _F.LABEL_REQUIRED
_TYPES = {
    "int64": _F.TYPE_INT64, "int32": _F.TYPE_INT32, "uint32": _F.TYPE_UINT32, "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT, "double": _F.TYPE_DOUBLE, "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
_PACKAGE = "caffe2"
_FILE_NAME = "convertkit_caffe2.proto"  # not caffe2.proto: never collide with a real Caffe2 install

# (label, type, name, number[, default]); a type not in _TYPES names a message or enum of this file.
_DATA_TYPES = [("UNDEFINED", 0), ("FLOAT", 1), ("INT32", 2), ("BYTE", 3), ("STRING", 4), ("BOOL", 5),
               ("UINT8", 6), ("INT8", 7), ("UINT16", 8), ("INT16", 9), ("INT64", 10), ("FLOAT16", 12),
               ("DOUBLE", 13), ("ZERO_COLLISION_HASH", 14), ("REBATCHING_BUFFER", 15)]
_STORAGE_TYPES = [("TYPED", 1), ("RAW", 2), ("EXTERNAL", 3), ("NO_CONTENT", 4)]

_MESSAGES: dict[str, list[tuple]] = {
    "ExternalDataProto": [
        (_OPT, "int32", "source_type", 1), (_OPT, "string", "record_id", 2),
        (_OPT, "uint64", "record_size", 5), (_OPT, "int64", "offset", 3), (_REP, "int64", "strides", 4)],
    "TensorProto.Segment": [(_REQ, "int64", "begin", 1), (_REQ, "int64", "end", 2)],
    "TensorProto": [
        (_REP, "int64", "dims", 1), (_OPT, "TensorProto.DataType", "data_type", 2, "FLOAT"),
        (_OPT, "uint32", "data_format", 15), (_OPT, "TensorProto.StorageType", "storage_type", 12, "TYPED"),
        (_REP, "float", "float_data", 3), (_REP, "int32", "int32_data", 4), (_OPT, "bytes", "byte_data", 5),
        (_REP, "bytes", "string_data", 6), (_REP, "double", "double_data", 9),
        (_REP, "int64", "int64_data", 10), (_OPT, "bytes", "raw_data", 13),
        (_OPT, "ExternalDataProto", "external_data", 14), (_OPT, "string", "name", 7),
        (_OPT, "DeviceOption", "device_detail", 8), (_OPT, "TensorProto.Segment", "segment", 11)],
    "QTensorProto": [
        (_REP, "int64", "dims", 1), (_OPT, "int32", "precision", 2), (_OPT, "double", "scale", 3),
        (_OPT, "double", "bias", 4), (_OPT, "bool", "is_signed", 5), (_REP, "int32", "data", 6),
        (_OPT, "string", "name", 7), (_OPT, "TensorProto.DataType", "data_type", 8, "INT32"),
        (_REP, "double", "scales", 9), (_REP, "double", "biases", 10), (_OPT, "int32", "axis", 11),
        (_OPT, "bool", "is_multiparam", 12)],
    "TensorProtos": [(_REP, "TensorProto", "protos", 1)],
    "TensorShape": [
        (_REP, "int64", "dims", 1), (_OPT, "TensorProto.DataType", "data_type", 2, "FLOAT"),
        (_REP, "int32", "unknown_dims", 3), (_OPT, "bool", "unknown_shape", 4), (_OPT, "string", "name", 5)],
    "TensorShapes": [(_REP, "TensorShape", "shapes", 1)],
    "Argument": [
        (_OPT, "string", "name", 1), (_OPT, "float", "f", 2), (_OPT, "int64", "i", 3),
        (_OPT, "bytes", "s", 4), (_OPT, "TensorProto", "t", 10), (_OPT, "NetDef", "n", 8),
        (_REP, "float", "floats", 5), (_REP, "int64", "ints", 6), (_REP, "bytes", "strings", 7),
        (_REP, "TensorProto", "tensors", 11), (_REP, "NetDef", "nets", 9),
        (_REP, "QTensorProto", "qtensors", 12)],
    "DeviceOption": [
        (_OPT, "int32", "device_type", 1), (_OPT, "int32", "device_id", 2),
        (_OPT, "uint32", "random_seed", 3), (_OPT, "string", "node_name", 4),
        (_OPT, "int32", "numa_node_id", 5), (_REP, "string", "extra_info", 6)],
    "OperatorDef": [
        (_REP, "string", "input", 1), (_REP, "string", "output", 2), (_OPT, "string", "name", 3),
        (_OPT, "string", "type", 4), (_REP, "Argument", "arg", 5), (_OPT, "DeviceOption", "device_option", 6),
        (_OPT, "string", "engine", 7), (_REP, "string", "control_input", 8),
        (_OPT, "bool", "is_gradient_op", 9), (_OPT, "string", "debug_info", 10),
        (_OPT, "string", "domain", 11), (_OPT, "int64", "op_version", 12)],
    "MapFieldEntry": [(_REQ, "string", "key", 1), (_REQ, "string", "val", 2)],
    "BackendOptions": [(_REQ, "string", "backend_name", 1), (_REP, "MapFieldEntry", "option", 2)],
    "PartitionInfo": [
        (_REQ, "string", "name", 1), (_REP, "int32", "device_id", 2), (_OPT, "string", "extra_info", 3),
        (_REP, "BackendOptions", "backend_options", 4)],
    "NetDef": [
        (_OPT, "string", "name", 1), (_REP, "OperatorDef", "op", 2), (_OPT, "string", "type", 3),
        (_OPT, "int32", "num_workers", 4), (_OPT, "DeviceOption", "device_option", 5),
        (_REP, "Argument", "arg", 6), (_REP, "string", "external_input", 7),
        (_REP, "string", "external_output", 8), (_REP, "PartitionInfo", "partition_info", 9)],
}
_ENUMS = {"TensorProto.DataType": _DATA_TYPES, "TensorProto.StorageType": _STORAGE_TYPES}

DATA_TYPES = dict(_DATA_TYPES)
"""Caffe2 TensorProto.DataType name -> number."""


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name=_FILE_NAME, package=_PACKAGE, syntax="proto2")
    messages: dict[str, Any] = {}
    for full in sorted(_MESSAGES, key=lambda n: n.count(".")):  # parents before nested messages
        parent, _, leaf = full.rpartition(".")
        container = messages[parent].nested_type if parent else fd.message_type
        messages[full] = container.add(name=leaf)
    for full, values in _ENUMS.items():
        parent, _, leaf = full.rpartition(".")
        enum = messages[parent].enum_type.add(name=leaf)
        for name, number in values:
            enum.value.add(name=name, number=number)
    for full, fields in _MESSAGES.items():
        for label, ftype, name, number, *default in fields:
            f = messages[full].field.add(name=name, number=number, label=label)
            if ftype in _TYPES:
                f.type = _TYPES[ftype]
            else:
                f.type = _F.TYPE_ENUM if ftype in _ENUMS else _F.TYPE_MESSAGE
                f.type_name = f".{_PACKAGE}.{ftype}"
            if default:
                f.default_value = default[0]
            if label == _REP and ftype in _TYPES and ftype not in ("string", "bytes"):
                f.options.packed = name in ("float_data", "int32_data", "double_data", "int64_data", "data")
    return fd


def _build() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    classes = {}
    for full in _MESSAGES:
        desc = pool.FindMessageTypeByName(f"{_PACKAGE}.{full}")
        classes[full] = message_factory.GetMessageClass(desc)
    return classes


_CLASSES = _build()
NetDef: type = _CLASSES["NetDef"]
OperatorDef: type = _CLASSES["OperatorDef"]
Argument: type = _CLASSES["Argument"]
TensorProto: type = _CLASSES["TensorProto"]
TensorProtos: type = _CLASSES["TensorProtos"]
QTensorProto: type = _CLASSES["QTensorProto"]
DeviceOption: type = _CLASSES["DeviceOption"]
