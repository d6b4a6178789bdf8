"""Starts moto's server for the test suite, with DynamoDB's writes made atomic.

moto evaluates condition expressions and transactions without a lock, so two requests served
by two of its threads can both pass the same `attribute_not_exists` check: racing
transactional appends were seen to produce three "winners" where DynamoDB allows one.
DynamoDB guarantees that a conditional write, and a whole TransactWriteItems, is atomic; this
launcher restores that guarantee by serialising moto's item reads and writes behind one lock,
so the suite tests clawgate against DynamoDB's semantics rather than against moto's race.
SQS is untouched (its queue operations already lock). Usage: moto_server.py -H HOST -p PORT
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _serialised(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return wrapper


for _name in ("put_item", "get_item", "update_item", "delete_item", "transact_write_items", "query"):
    setattr(DynamoDBBackend, _name, _serialised(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
