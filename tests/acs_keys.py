"""An RSA key pair playing ACS's token signer, with its JWKS served over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://acscallautomation.communication.azure.com"
RESOURCE_ID = "6a2f8a8e-0f4b-4d38-9f1c-4d5a3e0b2c11"
KEY_ID = "test-signing-key"


class AcsKeys:
    def __init__(self, jwks_url: str) -> None:
        self.jwks_url = jwks_url
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests = 0

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def token(
        self,
        *,
        audience: str = RESOURCE_ID,
        issuer: str = ISSUER,
        expires_in: int = 300,
        signed_by_stranger: bool = False,
        kid: str = KEY_ID,
    ) -> str:
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + expires_in}
        key = self.stranger_key if signed_by_stranger else self.private_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@contextmanager
def serve_acs_keys() -> Iterator[AcsKeys]:
    keys: AcsKeys

    class JwksHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            keys.requests += 1
            body = json.dumps(keys.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    keys = AcsKeys(f"http://127.0.0.1:{server.server_address[1]}/calling/keys")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield keys
    finally:
        server.shutdown()
