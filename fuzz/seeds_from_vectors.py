#!/usr/bin/env python3
"""Adds the libolm test vectors' messages, keys, pickles and files to the seed corpora in
fuzz/seeds/<target>/ (as vec-<hash> files), so the fuzzers also start from inputs libolm made.
Usage: fuzz/seeds_from_vectors.py  (idempotent: file names are content hashes)"""
import base64
import glob
import hashlib
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "test-vectors")


def b64(text):
    return base64.b64decode(text + "=" * (-len(text) % 4))


def fields(*parts):
    """ferrolm_fuzz::split's layout: N-1 length bytes, then the fields."""
    parts = [p.encode() if isinstance(p, str) else p for p in parts]
    return bytes(min(len(p), 255) for p in parts[:-1]) + b"".join(parts)


PER_TARGET = 200  # enough variety; more only slows every run's corpus load
written = {}


def write(target, data):
    folder = os.path.join(HERE, "seeds", target)
    os.makedirs(folder, exist_ok=True)
    name = "vec-" + hashlib.sha256(data).hexdigest()[:16]
    if written.setdefault(target, set()) and len(written[target]) >= PER_TARGET and name not in written[target]:
        return 0
    written[target].add(name)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)
    return 1


def olm_message(raw):
    # A pre-key message's second field is the base key (tag 0x12); a normal message's is the
    # chain index (tag 0x10).
    pre_key = len(raw) > 35 and raw[35] == 0x12
    return "olm_pre_key_message" if pre_key else "olm_message"


def main():
    for old in glob.glob(os.path.join(HERE, "seeds", "*", "vec-*")):
        os.remove(old)
    count = 0
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.json"))):
        name = os.path.basename(path)
        for vector in json.load(open(path))["vectors"]:
            for step in vector.get("steps", []):
                op = step.get("op", "")
                message = step.get("message")
                if isinstance(message, str) and op.startswith("session."):
                    raw = b64(message)
                    count += write(olm_message(raw), raw) + write("olm_decrypt", raw)
                elif isinstance(message, str) and op.startswith(("group.", "inbound.")):
                    raw = b64(message)
                    count += write("megolm_message", raw) + write("megolm_decrypt", raw)
                for key in ("session_key", "exported_key"):
                    if isinstance(step.get(key), str):
                        count += write("megolm_session_key", b64(step[key]))
                if isinstance(step.get("pickle"), str):
                    count += write("pickle_libolm", step["pickle"].encode())
                if op.startswith("pk_") and all(isinstance(step.get(k), str) for k in ("ciphertext", "mac", "ephemeral_key")):
                    count += write("pk_decrypt", fields(step["ciphertext"], step["mac"], step["ephemeral_key"]))
                if op == "key_export.encrypt" and isinstance(step.get("file"), str):
                    count += write("key_export_decrypt", step["file"].encode())
                if op == "secret_storage.encrypt":
                    count += write(
                        "secret_storage_decrypt",
                        fields(step["iv"], step["ciphertext"], step["mac"], step.get("name", "")),
                    )
                if isinstance(step.get("recovery_key"), str):
                    count += write("recovery_key", step["recovery_key"].encode())
                if op.startswith("sas.calculate_mac") and isinstance(step.get("mac"), str):
                    count += write("sas_mac", fields(step.get("input", ""), step.get("info", ""), step["mac"]))
                for key in ("public_key", "identity_key", "signature"):
                    if isinstance(step.get(key), str) and name != "primitives.json":
                        count += write("base64_keys", step[key].encode())
    print(f"{sum(len(v) for v in written.values())} seed files from the test vectors")


if __name__ == "__main__":
    main()
