"""MongoDB documents for tests: every BSON type a backup and a restore must carry over."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp


def every_type_docs(n: int = 40) -> list[dict]:
    base = datetime(2026, 1, 1)
    return [
        {
            "_id": ObjectId(f"{i:024x}"),
            "double": i + 0.5, "string": f"doc {i}", "object": {"nested": {"i": i}}, "array": [i, "x", {"y": i}],
            "binary": Binary(bytes(range(i % 50))), "uuid": Binary(uuid.UUID(int=i).bytes, 4), "bool": i % 2 == 0,
            "date": base + timedelta(hours=i), "null": None, "regex": Regex(f"^doc{i}", "i"),
            "code": Code(f"function() {{ return {i}; }}"), "int32": i, "timestamp": Timestamp(1_700_000_000 + i, 1),
            "int64": Int64(2**40 + i), "decimal": Decimal128(f"{i}.10"), "min": MinKey(), "max": MaxKey(),
            "email": f"user{i}@example.com", "project": i % 3, "status": ["todo", "done"][i % 2],
            "expires": base + timedelta(days=3650),
            **({"due": base + timedelta(days=i)} if i % 4 == 0 else {}),
        }
        for i in range(n)
    ]
