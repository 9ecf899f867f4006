"""The seed tutorial's step 3: N requests at once with `client.aio` and `asyncio.gather()`.

Kept as close to the seed's code as possible (one client, a list of coroutines, one gather);
the additions are the `genai` import the seed forgot, a count of failures instead of the first
exception aborting the run (`return_exceptions=True`), and the timing, for comparison with our
Rust step 3.

    GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT GOOGLE_API_KEY=any python seed_concurrent.py 10

The client reads GOOGLE_API_KEY (or GEMINI_API_KEY) and GOOGLE_GEMINI_BASE_URL from the
environment, like any google-genai program. Prints one JSON line:
{"requests": N, "succeeded": .., "failed": .., "elapsed_s": ..}
"""

import asyncio
import json
import sys
import time

from google import genai

_NUM_REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


async def generate_content(client):
    response = await client.aio.models.generate_content(
        model="gemini-flash-latest", contents="Why do some birds migrate?"
    )
    return response


async def main():
    client = genai.Client()
    start = time.perf_counter()
    coroutines = [generate_content(client) for _ in range(_NUM_REQUESTS)]
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    elapsed = time.perf_counter() - start
    failures = [r for r in results if isinstance(r, BaseException)]
    for exc in failures[:3]:
        print(f"request failed: {exc}", file=sys.stderr)
    print(
        json.dumps(
            {
                "requests": _NUM_REQUESTS,
                "succeeded": _NUM_REQUESTS - len(failures),
                "failed": len(failures),
                "elapsed_s": round(elapsed, 3),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
