"""Writer child for the kill loop: takes the reviewer role, then appends decision events forever, printing each one's id and token on
stdout only AFTER append() has returned (= acknowledged). Usage: _writer.py PROJECT_DIR TAG."""

import random
import sys

from core.review import audit, roles


def main() -> None:
    folder, tag = sys.argv[1], sys.argv[2]
    rng = random.Random(tag)
    roles.grant(folder, tag, "reviewer", by=tag)  # the log's write path refuses decisions by a name without a role
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        token = f"{tag}-{n}"
        sample = f"s{rng.randint(1, 6)}"
        if n % 5 == 0:  # sometimes several events in one transaction
            with audit.writing(folder) as log:
                first = log.append("decision", tag, {"decision": "keep", "token": token + "a"}, sample_id=sample)
                second = log.append("decision", tag, {"decision": "keep", "token": token + "b"}, sample_id=sample)
            print(f"{first.event_id} {sample} {token}a", flush=True)
            print(f"{second.event_id} {sample} {token}b", flush=True)
        else:
            event = audit.append(folder, "decision", tag, {"decision": "exclude", "token": token, "pad": "x" * rng.randint(0, 3000)},
                                 sample_id=sample)
            print(f"{event.event_id} {sample} {token}", flush=True)


if __name__ == "__main__":
    main()
