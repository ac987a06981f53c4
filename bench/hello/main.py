"""Hello world on the same stack (functions-framework + gunicorn): the throughput ceiling."""

import functions_framework


@functions_framework.http
def handle(request):
    return "hello\n"
