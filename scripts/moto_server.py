"""Starts moto's server for the test suite, with DynamoDB's writes made atomic.

moto evaluates condition expressions and transactions without a lock, so two requests served
by two of its threads can both pass the same `attribute_not_exists` check: racing
transactional appends were seen to produce three "winners" where DynamoDB allows one.
DynamoDB guarantees that a conditional write, and a whole TransactWriteItems, is atomic; this
launcher restores that guarantee by serialising moto's item reads and writes behind one lock,
so the suite tests clawgate against DynamoDB's semantics rather than against moto's race.
SQS is untouched (its queue operations already lock). Usage: moto_server.py -H HOST -p PORT

Second, cheaper transactions: to roll back a failed TransactWriteItems, moto deep-copies every
table a transaction names before running it, and the copies pile up (a 10,000-item table made
the emulator grow by ~30 MB a second until the kernel killed it at 24 GB, during
`cargo bench -p infra --bench transcript_cost`). Under the lock above, a transaction only needs
the items it touches: this launcher snapshots those, runs moto's own transaction with its table
copy turned off, and on failure puts the snapshots back before re-raising. The outcome is
moto's (same checks, same errors); only the bookkeeping differs.

Third, queries that read a key range, as DynamoDB's do: for every Query moto lists and sorts
every item of the table, then walks the partition from its first item comparing each, so a
Query's time grew with the table (90 ms for 10 items beside a 10,000-item partition, 215 ms in
it). Base-table queries here hand moto only the partition's items in the queried key range,
found by bisection in the partition's sorted keys (kept up to date by puts and deletes); moto's
own query code then sorts, compares, pages and limits them as before.
"""

import bisect
import copy
import functools
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return wrapper


class _NoTableCopy:
    """Stands in for the `copy` module inside moto's DynamoDB models: tables are not copied."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


dynamodb_models.copy = _NoTableCopy()
_moto_transact = DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    """moto's transaction, rolled back by restoring the items it touched."""
    touched = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table_name = op.get("TableName")
        if not table_name or table_name not in self.tables:
            continue
        if "Key" in op:
            key = op["Key"]
        else:
            table = self.tables[table_name]
            attrs = op.get("Item", {})
            key = {k: attrs[k] for k in (table.hash_key_attr, table.range_key_attr) if k and k in attrs}
        try:
            before = self.get_item(table_name, key)
        except Exception:  # noqa: BLE001 - moto raises its own errors for bad keys; let it, below
            continue
        touched.append((table_name, key, copy.deepcopy(before.to_json()["Attributes"]) if before else None))
    try:
        return _moto_transact(self, transact_items)
    except Exception:
        for table_name, key, attrs in reversed(touched):
            if attrs is None:
                try:
                    self.delete_item(table_name, key)
                except Exception:  # noqa: BLE001 - it was never written
                    pass
            else:
                self.put_item(table_name, attrs)
        raise


DynamoDBBackend.transact_write_items = _transact_write_items

_moto_query = dynamodb_models.Table.query
_moto_put = dynamodb_models.Table.put_item
_moto_delete = dynamodb_models.Table.delete_item


class _SortedKeys:
    """A partition's range keys in order, kept up to date by puts and deletes."""

    def __init__(self, partition):
        self.partition = partition  # held, so its id cannot be reused while cached
        self.by_value = {key.cast_value: key for key in partition}
        self.values = sorted(self.by_value)

    def add(self, key):
        value = key.cast_value
        if value not in self.by_value:
            self.by_value[value] = key
            bisect.insort(self.values, value)

    def remove(self, key):
        value = key.cast_value
        if self.by_value.pop(value, None) is not None:
            self.values.pop(bisect.bisect_left(self.values, value))

    def between(self, low, high):
        """Keys from `low` to `high` (either may be None: open), in order."""
        start = 0 if low is None else bisect.bisect_left(self.values, low)
        end = len(self.values) if high is None else bisect.bisect_right(self.values, high)
        return [self.by_value[v] for v in self.values[start:end]]


_SORTED = {}  # id(partition dict) -> _SortedKeys


def _sorted_keys(partition):
    cached = _SORTED.get(id(partition))
    if cached is None or cached.partition is not partition or len(cached.values) != len(partition):
        cached = _SORTED[id(partition)] = _SortedKeys(partition)
    return cached


def _put_item(self, item_attrs, *args, **kwargs):
    item = _moto_put(self, item_attrs, *args, **kwargs)
    if self.range_key_attr and item is not None and item.range_key is not None:
        cached = _SORTED.get(id(self.items.get(item.hash_key)))
        if cached is not None:
            cached.add(item.range_key)
    return item


def _delete_item(self, hash_key, range_key):
    item = _moto_delete(self, hash_key, range_key)
    if item is not None and range_key is not None:
        cached = _SORTED.get(id(self.items.get(hash_key)))
        if cached is not None:
            cached.remove(range_key)
    return item


def _query(self, hash_key, range_comparison, range_objs, *args, **kwargs):
    """moto's query, given only the partition's items in the key range to look at."""
    # moto calls query(hash, comparison, values, limit, start, forward, projection, index, …).
    index_name = kwargs.get("index_name") if "index_name" in kwargs else (args[4] if len(args) > 4 else None)
    if index_name or hash_key is None or not self.range_key_attr:
        return _moto_query(self, hash_key, range_comparison, range_objs, *args, **kwargs)
    partition = self.items.get(hash_key, {})
    comparison = (range_comparison or "").upper()
    bounds = [obj.cast_value for obj in range_objs or []]
    low, high = {
        "BETWEEN": lambda: (bounds[0], bounds[1]),
        ">=": lambda: (bounds[0], None),
        ">": lambda: (bounds[0], None),
        "<=": lambda: (None, bounds[0]),
        "<": lambda: (None, bounds[0]),
        "=": lambda: (bounds[0], bounds[0]),
    }.get(comparison, lambda: (None, None))()
    try:
        candidates = [partition[key] for key in _sorted_keys(partition).between(low, high)]
    except (TypeError, KeyError):  # mixed key types, or a stale order: the whole partition
        _SORTED.pop(id(partition), None)
        candidates = list(partition.values())
    self.all_items = lambda: candidates
    try:
        return _moto_query(self, hash_key, range_comparison, range_objs, *args, **kwargs)
    finally:
        del self.all_items


dynamodb_models.Table.query = _query
dynamodb_models.Table.put_item = _put_item
dynamodb_models.Table.delete_item = _delete_item

for _name in ("put_item", "get_item", "update_item", "delete_item", "transact_write_items", "query"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
