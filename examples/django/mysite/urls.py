"""URLs of the example Django project."""

import json

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("Hello from Django\n", content_type="text/plain")


@csrf_exempt
def echo(request):
    body = request.body
    return JsonResponse({"method": request.method, "length": len(body), "json": json.loads(body or b"null")})


def meta(request):
    return JsonResponse(
        {
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META.get("SCRIPT_NAME"),
            "query": request.GET.dict(),
            "host": request.get_host(),
            "secure": request.is_secure(),
            "cookie": request.COOKIES.get("session"),
        }
    )


def stream(request):
    return StreamingHttpResponse((f"line {i}\n".encode() for i in range(int(request.GET.get("n", 3)))))


def boom(request):
    raise RuntimeError("boom from django")


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("meta", meta),
    path("stream", stream),
    path("boom", boom),
]
