"""A static file server for the WASM demo page (`cargo xtask wasm serve`) and its browser
test: the standard library's, with the MIME types a page needs for ES modules and
WebAssembly, bound to one address, serving one directory."""

import argparse
import http.server
import mimetypes
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".yaml": "text/yaml; charset=utf-8",
        ".py": "text/x-python; charset=utf-8",
        ".wav": "audio/wav",
        ".zip": "application/zip",
    }

    def end_headers(self):
        # Every file is rebuilt by `cargo xtask wasm serve`; never serve a stale one.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


def main():
    parser = argparse.ArgumentParser(description="Serve the RemoteMedia WASM demo page.")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--directory", required=True, help="the site to serve")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args()
    mimetypes.init()

    def handler(*a, **kw):
        return Handler(*a, directory=args.directory, **kw)

    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as server:
        server.verbose = args.verbose
        host, port = server.server_address[:2]
        print(f"http://{host}:{port}/", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
