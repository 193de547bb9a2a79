"""``python -m dagrad.playground [--port 8765] [--host 127.0.0.1] [--no-browser]``"""
import argparse
import asyncio
import errno
import sys
import webbrowser

DEFAULT_PORT = 8765


def _parser():
    p = argparse.ArgumentParser(prog="dagrad-playground",
                                description="The three demos of computational graphs, live in a browser, "
                                            "computed by dagrad.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the port to serve on (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 serves "
                        "everyone who can reach this machine, with no login)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"dagrad-playground: --port {args.port} is not a port (0 to 65535)", file=sys.stderr)
        return 2
    from . import _require, create_app
    try:
        _require()
    except ImportError as e:
        print(f"dagrad-playground: {e}", file=sys.stderr)
        return 1
    import uvicorn

    config = uvicorn.Config(create_app(), host=args.host, port=args.port, log_level="warning",
                            ws="websockets-sansio", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)

    async def announce():
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{port}/"
        print(f"dagrad playground: {url}  (Ctrl-C stops it)", flush=True)
        if not args.no_browser:
            webbrowser.open(url)

    async def serve():
        task = asyncio.ensure_future(announce())
        try:
            await server.serve()
        finally:
            task.cancel()

    try:
        asyncio.run(serve())
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print(f"dagrad-playground: port {args.port} is in use; pick another with --port (0: any free one)",
                  file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        pass
    except SystemExit:  # Uvicorn exits when it cannot bind; it has logged why
        pass
    if not server.started:
        print(f"dagrad-playground: could not serve on {args.host}:{args.port} (see above; --port 0 picks a free "
              "port)", file=sys.stderr)
        return 1
    print("dagrad playground: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
