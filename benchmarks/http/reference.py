"""The reference server of the HTTP benchmark: uvicorn + Starlette (httptools), the same
two endpoints as benchmarks/http/flow.yaml.

    python benchmarks/http/reference.py --port 8000
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": request.path_params["name"]})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(await request.json())


app = Starlette(
    routes=[
        Route("/hello/{name}", hello, methods=["GET"]),
        Route("/echo", echo, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    options, _ = parser.parse_known_args()  # lolo-run's --state and --log-level are ignored
    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
