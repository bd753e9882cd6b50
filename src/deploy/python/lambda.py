# dlstatic AWS Lambda custom runtime (module _dlstatic_lambda): a loop over the Lambda
# Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), run by
# `bootstrap`. The handler is MODULE.FUNCTION from `_HANDLER`, else the one given to
# `dlstatic package --handler`.
import http.client
import importlib
import json
import os
import sys
import time
import traceback

from _dlstatic_config import HANDLER

API = "/2018-06-01/runtime"


class Context:
    """What the handler gets as `context` (the attributes AWS's own runtime sets)."""

    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")

    def get_remaining_time_in_millis(self):
        return max(self.deadline_ms - int(time.time() * 1000), 0)


def error_body(error):
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "stackTrace": traceback.format_exception(error),
        }
    )


def post(connection, path, body, error=False):
    headers = {"Content-Type": "application/json"}
    if error:
        headers["Lambda-Runtime-Function-Error-Type"] = "Unhandled"
    connection.request("POST", API + path, body, headers)
    connection.getresponse().read()


def load_handler(connection):
    name = os.environ.get("_HANDLER") or HANDLER
    module, _, function = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), function)
    except Exception as error:
        post(connection, "/init/error", error_body(error), error=True)
        sys.exit(f"bootstrap: cannot load handler {name}: {error!r}")


def serve():
    connection = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    handler = load_handler(connection)
    while True:
        connection.request("GET", API + "/invocation/next")
        response = connection.getresponse()
        event = json.loads(response.read() or b"null")
        headers = response.headers
        request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        if headers.get("Lambda-Runtime-Trace-Id"):
            os.environ["_X_AMZN_TRACE_ID"] = headers["Lambda-Runtime-Trace-Id"]
        try:
            result = json.dumps(handler(event, Context(headers)))
        except Exception as error:
            traceback.print_exc()
            post(connection, f"/invocation/{request_id}/error", error_body(error), error=True)
        else:
            post(connection, f"/invocation/{request_id}/response", result)
