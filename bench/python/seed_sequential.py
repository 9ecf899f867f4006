"""The seed tutorial's step 2, done right: N requests one after another with the sync client.

The seed's version declares `def generate_content` but `await`s inside it (a SyntaxError), and
never times anything. This keeps its shape -- one client, a list comprehension of calls -- with
the `await` removed, and times the requests for comparison with our Rust step 2.

    GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT GOOGLE_API_KEY=any python seed_sequential.py 10

The client reads GOOGLE_API_KEY (or GEMINI_API_KEY) and GOOGLE_GEMINI_BASE_URL from the
environment, like any google-genai program. Prints one JSON line:
{"requests": N, "succeeded": .., "failed": .., "elapsed_s": ..}
"""

import json
import sys
import time

from google import genai

_NUM_REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def generate_content(client):
    # A failed request is counted, not fatal, so the run always reports a full tally
    # (the same as `asyncio.gather(..., return_exceptions=True)` in seed_concurrent.py).
    try:
        response = client.models.generate_content(
            model="gemini-flash-latest", contents="Why do some birds migrate?"
        )
        return response
    except Exception as exc:  # noqa: BLE001 -- any failure counts as one failed request
        return exc


def main():
    client = genai.Client()
    start = time.perf_counter()
    results = [generate_content(client) for _ in range(_NUM_REQUESTS)]
    elapsed = time.perf_counter() - start
    failures = [r for r in results if isinstance(r, BaseException)]
    for exc in failures[:3]:
        print(f"request failed: {exc}", file=sys.stderr)
    succeeded = _NUM_REQUESTS - len(failures)
    print(
        json.dumps(
            {
                "requests": _NUM_REQUESTS,
                "succeeded": succeeded,
                "failed": len(failures),
                "elapsed_s": round(elapsed, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
