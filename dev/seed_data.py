"""Deterministic demo data for the local GravityPM MongoDB (`gravitypm_production`).

`build_documents()` is pure (fixed random seed, fixed dates, ObjectIds derived
from the seed), so every seeding produces byte-identical documents and tests
can compare against it. `seed(db)` applies it to a mongoeco AsyncDatabase (what
dev/mongo_server.py uses, in-process); `seed_sync(db)` does the same against a
pymongo Database (over the wire; insert through mongoeco's wire is slow).
Every BSON type appears at least once (see BSON_TYPE_FIELDS).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

DB_NAME = "gravitypm_production"
SEED = 20250101
# Naive UTC datetimes at millisecond precision: exactly what a default pymongo
# client decodes, so seeded and read-back documents compare equal.
BASE = dt.datetime(2025, 6, 1)
# The TTL index must not delete seeded activity (or backup/restore round trips
# would drift): ten years after dates that end mid-2026.
ACTIVITY_TTL_SECONDS = 10 * 365 * 24 * 3600

EXPECTED_COUNTS: dict[str, int] = {
    "users": 120,
    "projects": 40,
    "tasks": 800,
    "comments": 700,
    "activity": 600,
}

# No views: mongoeco 4.11 accepts `create` with viewOn/pipeline but makes a plain,
# empty collection (listed as type "collection", queries return nothing).
VIEWS: dict[str, dict[str, Any]] = {}

# collection -> options passed to create_collection (others are implicit).
COLLECTION_OPTIONS: dict[str, dict[str, Any]] = {
    "users": {
        "validator": {
            "$jsonSchema": {
                "bsonType": "object",
                "required": ["email", "name", "role", "created_at"],
                "properties": {
                    "email": {"bsonType": "string", "pattern": "^[^@]+@[^@]+$"},
                    "role": {"enum": ["admin", "manager", "member", "guest"]},
                },
            }
        },
        "validationLevel": "strict",
        "validationAction": "error",
    },
    # Case-insensitive project names/keys. mongoeco stores and lists this option but
    # does not apply it as the default collation (explicit per-query collation works).
    "projects": {"collation": {"locale": "en", "strength": 2}},
}

# collection -> [(keys, options)]; names are explicit so tests can look them up.
INDEXES: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    "users": [([("email", 1)], {"name": "email_unique", "unique": True})],
    "projects": [([("key", 1)], {"name": "key_unique", "unique": True})],
    "tasks": [
        ([("project_id", 1), ("status", 1)], {"name": "project_status"}),
        (
            [("due_date", 1)],
            {"name": "due_date_partial", "partialFilterExpression": {"due_date": {"$exists": True}}},
        ),
    ],
    "comments": [([("task_id", 1), ("created_at", -1)], {"name": "task_created"})],
    "activity": [
        ([("created_at", 1)], {"name": "created_at_ttl", "expireAfterSeconds": ACTIVITY_TTL_SECONDS}),
    ],
}

# Where each BSON type lives (documentation + a checklist for tests).
BSON_TYPE_FIELDS = {
    "double": "tasks.estimate_hours", "string": "users.name", "object": "users.profile",
    "array": "projects.member_ids", "binary": "users.avatar", "binary_uuid4": "users.external_id",
    "objectid": "*._id", "bool": "users.active", "date": "*.created_at", "null": "tasks.completed_at",
    "regex": "projects.branch_pattern", "javascript": "projects.automation", "int32": "tasks.number",
    "timestamp": "activity.oplog_ts", "int64": "users.storage_bytes", "decimal128": "projects.budget",
    "minkey": "tasks.rank", "maxkey": "tasks.rank",
}

FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Radia", "Dennis", "Frances",
         "Edsger", "Katherine", "Tim", "Hedy", "Guido", "Sophie", "Bjarne", "Anita", "John", "Shafi"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Perlman",
        "Ritchie", "Allen", "Dijkstra", "Johnson", "Berners-Lee", "Lamarr", "Rossum", "Wilson"]
WORDS = ["billing", "search", "onboarding", "api", "mobile", "reports", "gateway", "auth", "export",
         "dashboard", "sync", "webhooks", "migration", "audit", "notifications", "pipeline"]
STATUSES = ["todo", "in_progress", "review", "done"]
VERBS = ["created", "updated", "commented", "assigned", "closed", "reopened"]


def _ms(d: dt.datetime) -> dt.datetime:
    return d.replace(microsecond=d.microsecond // 1000 * 1000)


def build_documents() -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(SEED)

    def when(max_days: int = 365) -> dt.datetime:
        return _ms(BASE + dt.timedelta(seconds=rng.uniform(0, max_days * 86400)))

    def oid(at: dt.datetime) -> ObjectId:
        # Real ObjectId layout (4-byte timestamp) with seeded "random" bytes.
        ts = int(at.replace(tzinfo=dt.UTC).timestamp())
        return ObjectId(ts.to_bytes(4, "big") + rng.getrandbits(64).to_bytes(8, "big"))

    users = []
    for i in range(EXPECTED_COUNTS["users"]):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        created = when(120)
        users.append({
            "_id": oid(created),
            "name": f"{first} {last}",
            "email": f"{first}.{last}.{i}@gravitypm.example".lower(),
            "role": rng.choices(["admin", "manager", "member", "guest"], [2, 10, 80, 8])[0],
            "active": rng.random() > 0.1,
            "profile": {"timezone": rng.choice(["UTC", "Europe/Berlin", "America/New_York"]),
                        "title": rng.choice(["Engineer", "Designer", "PM", "QA"]), "locale": "en"},
            "avatar": bytes(rng.getrandbits(8) for _ in range(16)),  # binary subtype 0
            "external_id": Binary.from_uuid(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "storage_bytes": Int64(rng.randrange(2**31, 2**40)),  # beyond int32 on purpose
            "last_login": when() if rng.random() > 0.2 else None,
            "created_at": created,
        })
    user_ids = [u["_id"] for u in users]

    projects = []
    for i in range(EXPECTED_COUNTS["projects"]):
        created = when(90)
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {i}"
        projects.append({
            "_id": oid(created),
            "key": f"GP{i:03d}",
            "name": name,
            "owner_id": rng.choice(user_ids),
            "member_ids": rng.sample(user_ids, rng.randint(3, 12)),
            "status": rng.choice(["active", "active", "active", "on_hold", "archived"]),
            "budget": Decimal128(f"{rng.randint(5_000, 500_000)}.{rng.randint(0, 99):02d}"),
            "hourly_rate": round(rng.uniform(40, 160), 2),
            "tags": rng.sample(WORDS, 3),
            "branch_pattern": Regex(f"^(feature|fix)/GP{i:03d}-", "i"),
            "automation": Code("function onClose(task) { return task.status === 'done'; }"),
            "settings": {"default_view": rng.choice(["board", "list"]), "wip_limit": rng.randint(3, 9)},
            "created_at": created,
        })

    tasks = []
    per_project: dict[ObjectId, int] = {}
    for i in range(EXPECTED_COUNTS["tasks"]):
        project = rng.choice(projects)
        per_project[project["_id"]] = number = per_project.get(project["_id"], 0) + 1
        created = when(300)
        status = rng.choices(STATUSES, [30, 20, 10, 40])[0]
        task = {
            "_id": oid(created),
            "project_id": project["_id"],
            "number": number,
            "title": f"{rng.choice(VERBS).title()} {rng.choice(WORDS)} {rng.choice(WORDS)}",
            "status": status,
            "priority": rng.randint(1, 4),
            "assignee_id": rng.choice(project["member_ids"]) if rng.random() > 0.15 else None,
            "estimate_hours": round(rng.uniform(0.5, 40), 1),
            "labels": rng.sample(["bug", "feature", "chore", "ux", "backend", "frontend"], rng.randint(0, 3)),
            "completed_at": created + dt.timedelta(days=rng.randint(1, 30)) if status == "done" else None,
            "created_at": created,
        }
        if rng.random() > 0.3:  # the partial index only covers tasks with a due date
            task["due_date"] = created + dt.timedelta(days=rng.randint(3, 60))
        # Pinned-first / pinned-last tasks use the BSON sort sentinels.
        task["rank"] = MinKey() if i % 97 == 0 else MaxKey() if i % 89 == 0 else rng.random()
        tasks.append(task)

    comments = []
    for _ in range(EXPECTED_COUNTS["comments"]):
        task = rng.choice(tasks)
        created = _ms(task["created_at"] + dt.timedelta(hours=rng.uniform(1, 24 * 40)))
        comments.append({
            "_id": oid(created),
            "task_id": task["_id"],
            "author_id": rng.choice(user_ids),
            "body": f"Looked at {rng.choice(WORDS)}: {rng.choice(['LGTM', 'needs tests', 'blocked', 'done'])}.",
            "edited": rng.random() < 0.1,
            "reactions": {"+1": rng.randint(0, 5), "eyes": rng.randint(0, 2)},
            "attachments": [{"name": f"log-{n}.txt", "sha256": rng.randbytes(32)}
                            for n in range(rng.choice([0, 0, 0, 1, 2]))],
            "created_at": created,
        })

    activity = []
    for i in range(EXPECTED_COUNTS["activity"]):
        task = rng.choice(tasks)
        created = when()
        activity.append({
            "_id": oid(created),
            "actor_id": rng.choice(user_ids),
            "project_id": task["project_id"],
            "task_id": task["_id"],
            "verb": rng.choice(VERBS),
            "seq": Int64(i + 1),
            "oplog_ts": Timestamp(int(created.replace(tzinfo=dt.UTC).timestamp()), i % 7 + 1),
            "meta": {"ip": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "client": "web"},
            "created_at": created,
        })

    return {"users": users, "projects": projects, "tasks": tasks, "comments": comments, "activity": activity}


def _plan() -> list[tuple[str, object]]:
    """Ordered ("command", cmd) / ("insert", (collection, docs)) steps.

    Raw server commands (create, createIndexes) because mongoeco's async API
    takes snake_case index options where pymongo takes camelCase.
    """
    steps: list[tuple[str, object]] = []
    steps += [("command", {"create": name, **opts}) for name, opts in COLLECTION_OPTIONS.items()]
    steps += [("insert", item) for item in build_documents().items()]
    steps += [("command", {"createIndexes": coll,
                           "indexes": [{"key": dict(keys), **opts} for keys, opts in specs]})
              for coll, specs in INDEXES.items()]
    steps += [("command", {"create": name, **spec}) for name, spec in VIEWS.items()]
    return steps


async def seed(db) -> None:
    """Seed a mongoeco AsyncDatabase (in-process, fast)."""
    for kind, arg in _plan():
        if kind == "command":
            await db.command(arg)
        else:
            await db[arg[0]].insert_many(arg[1])


def seed_sync(db, batch_size: int = 100) -> None:
    """Seed a pymongo Database. Against mongoeco's wire server this takes ~5 s
    (MemoryEngine) to ~33 s (SQLiteEngine); small batches keep it from getting worse."""
    for kind, arg in _plan():
        if kind == "command":
            db.command(arg)
        else:
            name, docs = arg
            for start in range(0, len(docs), batch_size):
                db[name].insert_many(docs[start:start + batch_size])


def bench_documents(start: int, count: int) -> list[dict[str, Any]]:
    """~1 KiB activity-like documents for the backup benchmark (deterministic)."""
    rng = random.Random(start)
    return [
        {
            "_id": i,
            "project": f"p{i % 97:03d}",
            "kind": VERBS[i % len(VERBS)],
            "at": BASE + dt.timedelta(seconds=i),
            "score": rng.random(),
            "text": " ".join(rng.choice(WORDS) for _ in range(120)),
        }
        for i in range(start, start + count)
    ]


async def seed_bench(db, count: int, batch: int = 5000) -> None:
    """Seed `bench.docs` in-process (through the wire this would take minutes)."""
    for start in range(0, count, batch):
        await db.docs.insert_many(bench_documents(start, min(batch, count - start)))
