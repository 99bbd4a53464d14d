"""V2 tensors: JSON and binary decoding, every bad input, response encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from bascule.core.errors import InvalidInputError
from bascule.core.outputs import OutputTensor, encode_response, serialize_bytes
from bascule.core.tensor_data import datatype_of
from bascule.core.tensors import load_json, parse_request, split_body
from bascule.core.v2 import InferenceRequest, InferenceResponse


def one(spec: dict[str, Any], binary: bytes = b"") -> np.ndarray:
    return parse_request({"inputs": [spec]}, memoryview(binary)).inputs[0].array


def test_flat_and_nested_json_data_give_the_same_array() -> None:
    flat = one({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]})
    nested = one({"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]})

    assert np.float32 == flat.dtype
    assert (2, 2) == flat.shape
    np.testing.assert_array_equal(flat, nested)


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("FP64", [1.5, 2], np.float64),
        ("FP16", [1.5, 2], np.float16),
        ("INT64", [1, -2], np.int64),
        ("INT8", [1.0, -2.0], np.int8),
        ("UINT32", [1, 2], np.uint32),
        ("BOOL", [True, False], np.bool_),
        ("BYTES", ["a", "é"], object),
    ],
)
def test_every_datatype_decodes_to_its_numpy_dtype(
    datatype: str, data: list[Any], dtype: Any
) -> None:
    arr = one({"name": "x", "datatype": datatype, "shape": [2], "data": data})

    assert np.dtype(dtype) == arr.dtype
    assert data == arr.tolist()
    assert datatype == datatype_of(arr)


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_flat_float_data_decodes_exactly_like_numpy_does(datatype: str) -> None:
    rng = np.random.default_rng(7)
    data: list[Any] = [float(v) for v in rng.standard_normal(60)]
    data[3], data[10], data[20] = 7, -(2**70), 1e-320  # integers and a subnormal
    data[30] = True  # a boolean after the first value is a number, as numpy reads it
    dtype = np.float32 if datatype == "FP32" else np.float64

    arr = one({"name": "x", "datatype": datatype, "shape": [20, 3], "data": data})

    expected = np.asarray(data, dtype=np.float64).astype(dtype).reshape(20, 3)
    assert dtype == arr.dtype
    assert expected.tobytes() == arr.tobytes()


def test_null_is_a_missing_value_in_float_and_bytes_tensors() -> None:
    floats = one({"name": "x", "datatype": "FP32", "shape": [3], "data": [1, None, 3]})
    text = one({"name": "c", "datatype": "BYTES", "shape": [2], "data": ["a", None]})

    assert np.isnan(floats[1])
    assert [None] == text[1:].tolist()


BAD_INPUTS = [
    # (spec, words the message must contain)
    (
        {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3]]},
        ["'x'", "ragged", "4 FP32"],
    ),
    ({"name": "x", "datatype": "FP32", "shape": [2], "data": [1, "a"]}, ["'x'", "'a'", "2 FP32"]),
    ({"name": "x", "datatype": "FP32", "shape": [2], "data": [1, "2"]}, ["'x'", "'2'", "FP32"]),
    ({"name": "x", "datatype": "FP32", "shape": [2], "data": [1, {}]}, ["'x'", "{}", "FP32"]),
    (
        {"name": "x", "datatype": "FP32", "shape": [2], "data": [True, False]},
        ["'x'", "True", "FP32"],
    ),
    ({"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}, ["'x'", "2 values", "[3]"]),
    ({"name": "x", "datatype": "INT64", "shape": [2], "data": [1, 2.5]}, ["'x'", "2.5", "INT64"]),
    (
        {"name": "x", "datatype": "INT64", "shape": [1], "data": [2**70]},
        ["'x'", str(2**70), "INT64"],
    ),
    (
        {"name": "x", "datatype": "FP64", "shape": [2], "data": [1.5, 10**400]},
        ["'x'", "1000", "2 FP64"],
    ),
    ({"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}, ["'x'", "300", "[-128, 127]"]),
    ({"name": "x", "datatype": "UINT8", "shape": [1], "data": [-1]}, ["'x'", "-1", "[0, 255]"]),
    ({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}, ["'x'", "1", "BOOL"]),
    ({"name": "c", "datatype": "BYTES", "shape": [2], "data": ["a", 1]}, ["'c'", "1", "strings"]),
    ({"name": "x", "datatype": "FP33", "shape": [1], "data": [1]}, ["'x'", "'FP33'", "FP32"]),
    ({"name": "x", "datatype": ["FP32"], "shape": [1], "data": [1]}, ["'x'", "['FP32']"]),
    (
        {"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]},
        ["'x'", "[-1]", "non-negative"],
    ),
    ({"name": "x", "datatype": "FP32", "shape": "1", "data": [1]}, ["'x'", "'1'", "non-negative"]),
    ({"name": "x", "datatype": "FP32", "shape": [1]}, ["'x'", "None", "list"]),
    ({"name": "x", "datatype": "FP32", "shape": [1], "data": 1}, ["'x'", "1", "list"]),
    ({"datatype": "FP32", "shape": [1], "data": [1]}, ["input name", "non-empty string"]),
    (
        {
            "name": "x",
            "datatype": "FP32",
            "shape": [1],
            "data": [1],
            "parameters": {"binary_data_size": 4},
        },
        ["'x'", "both"],
    ),
]


@pytest.mark.parametrize(("spec", "words"), BAD_INPUTS)
def test_bad_json_inputs_name_the_input_what_was_sent_and_what_is_expected(
    spec: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(InvalidInputError) as e:
        one(spec)

    assert "invalid_input" == e.value.code
    for word in words:
        assert word in e.value.message


def test_huge_declared_shapes_are_refused_before_allocating() -> None:
    for datatype in ("BYTES", "FP32"):
        spec = {
            "name": "x",
            "datatype": datatype,
            "shape": [2**40, 2**40],
            "parameters": {"binary_data_size": 8},
        }
        with pytest.raises(InvalidInputError, match="'x'"):
            one(spec, b"\0" * 8)
    with pytest.raises(InvalidInputError, match="'x'"):
        one({"name": "x", "datatype": "BYTES", "shape": [2**40], "data": ["a"]})


def test_deeply_nested_data_is_refused_not_crashed() -> None:
    data: Any = [1.0]
    for _ in range(200):
        data = [data]

    with pytest.raises(InvalidInputError, match="'x'"):
        one({"name": "x", "datatype": "FP32", "shape": [1], "data": data})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([1, 2], ["request body", "JSON object"]),
        ({"inputs": []}, ["inputs", "non-empty"]),
        ({}, ["inputs", "non-empty"]),
        ({"inputs": [1]}, ["inputs[]"]),
        (
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}] * 2},
            ["'x'", "twice"],
        ),
        ({"id": 3, "inputs": []}, ["id", "string"]),
        ({"parameters": [], "inputs": []}, ["parameters"]),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "outputs": "label",
            },
            ["outputs"],
        ),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "outputs": [{}],
            },
            ["outputs[].name"],
        ),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "parameters": {"binary_data_output": "yes"},
            },
            ["binary_data_output", "true or false"],
        ),
    ],
)
def test_bad_requests_are_invalid_input(body: Any, words: list[str]) -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_request(body)

    for word in words:
        assert word in e.value.message


def test_binary_extension_round_trip_for_numbers_and_strings() -> None:
    numbers = np.array([[1.5, -2.0], [3.0, 4.25]], dtype=np.float32)
    text = np.array(["lyon", "", "zürich"], dtype=object)
    header = orjson.dumps(
        {
            "id": "r1",
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 2],
                    "parameters": {"binary_data_size": 16},
                },
                {
                    "name": "c",
                    "datatype": "BYTES",
                    "shape": [3],
                    "parameters": {"binary_data_size": len(serialize_bytes(text))},
                },
            ],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}, {"name": "p"}],
        }
    )
    body = header + numbers.tobytes() + serialize_bytes(text)

    head, binary = split_body(body, str(len(header)))
    parsed = parse_request(load_json(head), binary)

    assert "r1" == parsed.id
    np.testing.assert_array_equal(numbers, parsed.inputs[0].array)
    assert text.tolist() == parsed.inputs[1].array.tolist()
    assert [("label", True), ("p", False)] == [(o.name, o.binary) for o in parsed.outputs or []]


@pytest.mark.parametrize(
    ("spec", "binary", "words"),
    [
        (
            {"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 7}},
            b"\0" * 7,
            ["'x'", "7 bytes", "8 bytes"],
        ),
        (
            {"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
            b"\0" * 4,
            ["'x'", "runs past"],
        ),
        (
            {"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": -1}},
            b"",
            ["'x'", "-1"],
        ),
        (
            {"name": "c", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 5}},
            b"\x01\0\0\0a",
            ["'c'", "hold 2"],
        ),
        (
            {"name": "c", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 5}},
            b"\x01\0\0\0\xff",
            ["'c'", "UTF-8"],
        ),
        (
            {"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}},
            b"\0" * 6,
            ["6 bytes", "4"],
        ),
    ],
)
def test_bad_binary_inputs_are_invalid_input(
    spec: dict[str, Any], binary: bytes, words: list[str]
) -> None:
    with pytest.raises(InvalidInputError) as e:
        one(spec, binary)

    for word in words:
        assert word in e.value.message


@pytest.mark.parametrize("header", ["abc", "-1", "999"])
def test_header_length_must_fit_the_body(header: str) -> None:
    with pytest.raises(InvalidInputError, match="Inference-Header-Content-Length"):
        split_body(b"{}", header)


def test_nan_tokens_from_python_clients_are_accepted() -> None:
    assert np.isnan(load_json(b'{"a": NaN}')["a"])
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_json(b'{"a": ')


def test_json_response_is_flat_row_major_and_valid_v2() -> None:
    proba = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    labels = np.array(["no", "yes"], dtype=object)

    body, header_length = encode_response(
        {"model_name": "m", "model_version": "2", "id": "r"},
        [OutputTensor("label", "BYTES", labels), OutputTensor("probabilities", "FP32", proba)],
    )
    decoded = orjson.loads(body)

    assert header_length is None
    assert [0.25, 0.75, 0.5, 0.5] == decoded["outputs"][1]["data"]
    assert [2, 2] == decoded["outputs"][1]["shape"]
    assert ["no", "yes"] == decoded["outputs"][0]["data"]
    InferenceResponse.model_validate(decoded)


def test_binary_response_puts_data_after_the_json_header() -> None:
    proba = np.array([[0.25, 0.75]], dtype=np.float32)
    labels = np.array(["yes"], dtype=object)

    body, header_length = encode_response(
        {"model_name": "m"},
        [
            OutputTensor("label", "BYTES", labels, True),
            OutputTensor("probabilities", "FP32", proba, True),
        ],
    )
    assert header_length is not None
    head = orjson.loads(body[:header_length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]

    assert [7, 8] == sizes
    assert body[header_length:] == serialize_bytes(labels) + proba.tobytes()


def test_pydantic_request_model_accepts_what_the_hand_parser_accepts() -> None:
    body = {
        "id": "a",
        "parameters": {"binary_data_output": True},
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [[1, 2]]}],
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
    }

    InferenceRequest.model_validate(body)
    assert 1 == len(parse_request(body).inputs)
