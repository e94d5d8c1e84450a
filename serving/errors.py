"""The serving error type: a gRPC status code and a one-line reason, mapped from TensorFlow's errors.

A message quotes what the client sent (a model, signature or input name) through :func:`quote`, which cuts it to
``CLIENT_TEXT_LIMIT`` characters, so a request cannot make the server echo megabytes back or into its log.
"""

from __future__ import annotations

from typing import Iterable

import grpc

_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}
CLIENT_TEXT_LIMIT = 200  # characters of one client-supplied string in a message
MESSAGE_LIMIT = 2000  # characters of a whole message


class ServingError(Exception):
    """A request failed with ``code`` (a :class:`grpc.StatusCode`) for the reason ``message``.

    Args:
      code: the gRPC status code the server answers with (TF Serving's codes: INVALID_ARGUMENT, NOT_FOUND, ...).
      message: one line saying what was wrong.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        message = _one_line(message, MESSAGE_LIMIT)
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def quote(value, limit: int = CLIENT_TEXT_LIMIT) -> str:
    """``repr(value)`` of a client-supplied string, cut to ``limit`` characters (``'abc...' (5000 characters)``)."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def quote_all(values: Iterable, limit: int = 5) -> str:
    """``['a', 'b']`` of client-supplied strings: each cut by :func:`quote`, at most ``limit`` of them shown."""
    values = list(values)
    shown = ", ".join(quote(v) for v in values[:limit])
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"


def invalid(message: str) -> ServingError:
    """An INVALID_ARGUMENT error."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """A NOT_FOUND error."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    """A FAILED_PRECONDITION error."""
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def from_exception(e: BaseException) -> ServingError:
    """Maps an exception raised while running a model to a :class:`ServingError`.

    TensorFlow's error codes are gRPC's (``tf.errors.InvalidArgumentError.error_code == 3``), so an ``OpError``
    keeps its code. A ``UnicodeDecodeError`` comes from TensorFlow building the message of a parse error that
    quotes the request's bytes; it is the request's fault, hence INVALID_ARGUMENT. Anything else is INTERNAL.
    """
    import tensorflow as tf

    if isinstance(e, ServingError):
        return e
    if isinstance(e, tf.errors.OpError):
        code = _BY_VALUE.get(int(e.error_code), grpc.StatusCode.INTERNAL)
        return ServingError(code, _one_line(e.message))
    if isinstance(e, UnicodeDecodeError):
        return invalid("the model could not parse the input (TensorFlow's error quotes bytes that are not UTF-8)")
    if isinstance(e, (ValueError, TypeError)):
        return invalid(_one_line(str(e)))
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {_one_line(str(e))}")


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " ..."
