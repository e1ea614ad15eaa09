"""Slow clients, to try a deployment's defences (a slowloris): many connections from one address
that send a request head and then a body one byte every few seconds - or half a head and then
nothing - and reconnect as soon as the server closes them. Bounded in count and time.

    python tools/slow_clients.py --port 8443 --source 127.0.0.66 --connections 1600 --seconds 20

Prints one JSON line: connections opened, and how many the server closed or refused.
Only ever point it at a server of your own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

PATHS = ("/", "/healthz", "/readyz")


async def slow_client(number: int, args: argparse.Namespace, ends: float, tally: dict[str, int]) -> None:
    path = PATHS[number % len(PATHS)]
    # "mixed": a quarter send half a request head and then nothing, the others trickle a body
    half_head = args.mode == "half-head" or (args.mode == "mixed" and number % 4 == 3)
    await asyncio.sleep(args.ramp * number / args.connections)  # the first connections, spread out
    while time.monotonic() < ends:
        try:
            reader, writer = await asyncio.open_connection(args.host, args.port, local_addr=(args.source, 0))
        except OSError:
            tally["refused"] += 1
            await asyncio.sleep(0.01)
            continue
        tally["opened"] += 1
        try:
            if half_head:
                writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Ty".encode())
            else:
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: 100000\r\n\r\n{{".encode()
                )
            await writer.drain()
            while time.monotonic() < ends:
                try:
                    answer = await asyncio.wait_for(reader.read(65536), timeout=args.interval)
                except TimeoutError:
                    if not half_head:
                        writer.write(b" ")  # one more byte of the body
                        await writer.drain()
                    continue
                if not answer:  # the server closed it
                    break
        except OSError:
            pass
        finally:
            tally["closed"] += 1
            writer.close()


async def flood(args: argparse.Namespace) -> dict[str, int]:
    tally = {"opened": 0, "closed": 0, "refused": 0}
    ends = time.monotonic() + args.seconds
    await asyncio.gather(*(slow_client(n, args, ends, tally) for n in range(args.connections)))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.66", help="the one address all connections come from")
    parser.add_argument("--connections", type=int, default=1600)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between two bytes of a body")
    parser.add_argument("--mode", choices=("mixed", "half-head", "trickle"), default="mixed")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which the first connections open")
    args = parser.parse_args()
    if not 1 <= args.connections <= 20000 or not 0 < args.seconds <= 600:
        parser.error("connections must be 1-20000 and seconds 0-600")
    print(json.dumps(asyncio.run(flood(args))), flush=True)


if __name__ == "__main__":
    main()
