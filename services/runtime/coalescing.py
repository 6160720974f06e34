"""Fewer store round trips: the calls of handlers running side by side, sent together.

A batch's lanes run concurrently and mostly do the same things at the same moments (read
the case, store the effect, clear the outbox). Each such call costs a round trip and, on
both ends, a command's fixed overhead, which dominates small operations. Here the calls
made in one turn of the event loop are gathered and sent as one command each:

- ``find_one({"_id": v}, projection)`` calls on a collection become one
  ``find({"_id": {"$in": [...]}})``;
- ``insert_one`` / ``update_one`` / ``replace_one`` / ``delete_one`` calls, on any
  collections, become one MongoDB 8 ``bulkWrite`` command with per-operation results
  (unordered: they come from independent handlers; one handler's calls are still in its
  order, because it awaits each before making the next).

Every caller gets exactly what the single call would have returned or raised (its own
UpdateResult, DuplicateKeyError, …); atomicity is per document, as before. A server
without ``bulkWrite`` (before MongoDB 8) gets the writes one by one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ClientBulkWriteException,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    WriteConcernError,
    WriteError,
)
from pymongo.operations import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.results import DeleteResult, InsertOneResult, UpdateResult

from services.runtime.errors import StoreContention

log = logging.getLogger(__name__)

Document = dict[str, Any]
WriteModel = InsertOne[Document] | UpdateOne | ReplaceOne[Document] | DeleteOne
SCALAR_ID = (str, int, float, bytes)
# Server answers meaning "no transactions here" (a standalone mongod): IllegalOperation,
# NotImplemented.
NO_TRANSACTIONS = {20, 238}
# A concurrent writer (another instance) changed a document of the transaction.
WRITE_CONFLICT = 112
MAX_CONFLICT_RETRIES = 20


@dataclass
class _Read:
    collection: AsyncCollection[Document]
    projection: Mapping[str, Any] | None
    wanted: dict[Any, list[asyncio.Future[Document | None]]] = field(default_factory=dict)


class StoreBatcher:
    """Collects store calls made in one event-loop turn and sends them as few commands."""

    def __init__(self, client: AsyncMongoClient[Document], transactions: bool = True) -> None:
        self.client = client
        self._reads: dict[tuple[str, str], _Read] = {}
        self._writes: list[tuple[WriteModel, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._writing = False
        self._running: set[asyncio.Future[None]] = set()
        self.bulk_write_supported = True
        self.transactions = transactions

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            # After every handler that is ready to run this turn has made its call.
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        reads, self._reads = self._reads, {}
        for read in reads.values():
            self._start(self._run_read(read))
        if self._writes and not self._writing:
            self._writing = True
            self._start(self._write_all())

    async def _write_all(self) -> None:
        """One batch of writes at a time: what arrives meanwhile goes into the next one.

        Two of our own transactions in flight would conflict on the documents many
        handlers touch (a month's budget, a day's counter); one after the other they do
        not, and a busy moment simply makes the next batch bigger.
        """
        try:
            while self._writes:
                writes, self._writes = self._writes, []
                await self._run_writes(writes)
        finally:
            self._writing = False

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._running.add(task)  # a reference, so the task is not collected mid-flight
        task.add_done_callback(self._running.discard)

    # --- reads -----------------------------------------------------------------------

    def find_by_id(
        self, collection: AsyncCollection[Document], document_id: Any,
        projection: Mapping[str, Any] | None,
    ) -> asyncio.Future[Document | None]:  # fmt: skip
        key = (collection.full_name, repr(sorted((projection or {}).items())))
        read = self._reads.get(key)
        if read is None:
            read = self._reads[key] = _Read(collection, projection)
        future: asyncio.Future[Document | None] = asyncio.get_running_loop().create_future()
        read.wanted.setdefault(document_id, []).append(future)
        self._schedule()
        return future

    async def _run_read(self, read: _Read) -> None:
        try:
            ids = list(read.wanted)
            query = {"_id": ids[0]} if len(ids) == 1 else {"_id": {"$in": ids}}
            found = {
                doc["_id"]: doc
                async for doc in AsyncCollection.find(read.collection, query, read.projection)
            }
        except BaseException as exc:  # every caller sees the failure of its call
            for futures in read.wanted.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for document_id, futures in read.wanted.items():
            document = found.get(document_id)
            for copies, future in enumerate(futures):
                if not future.done():
                    # Two callers of one document each get their own: callers may change it.
                    mine = document if copies == 0 or document is None else deepcopy(document)
                    future.set_result(mine)

    # --- writes ----------------------------------------------------------------------

    def write(self, model: WriteModel) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._writes.append((model, future))
        self._schedule()
        return future

    async def _run_writes(self, writes: list[tuple[WriteModel, asyncio.Future[Any]]]) -> None:
        if not self.bulk_write_supported:
            await asyncio.gather(*(self._run_alone(model, future) for model, future in writes))
            return
        models = [model for model, _ in writes]
        try:
            if self.transactions:
                outcomes, errors = await self._bulk_in_transactions(models)
            else:
                outcomes, errors = await self._bulk(models)
        except InvalidOperation as exc:
            if "8.0" not in str(exc):  # anything but "this server has no bulkWrite"
                self._fail_all(writes, exc)
                return
            log.info("the store has no bulkWrite command: writes go one by one")
            self.bulk_write_supported = False
            await self._run_writes(writes)
            return
        except OperationFailure as exc:
            if not self.transactions or exc.code not in NO_TRANSACTIONS:
                self._fail_all(writes, exc)
                return
            log.info("the store has no transactions: a batch's writes commit one by one")
            self.transactions = False
            await self._run_writes(writes)
            return
        except BaseException as exc:
            self._fail_all(writes, exc)
            return
        for index, (_, future) in enumerate(writes):
            if future.done():
                continue
            if index in outcomes:
                future.set_result(outcomes[index])
            else:
                future.set_exception(_write_error(errors.get(index, {})))

    async def _bulk(
        self, models: list[WriteModel], session: AsyncClientSession | None = None
    ) -> tuple[dict[int, Any], dict[int, Document]]:
        """One bulkWrite: each operation's result, and each failed operation's error.

        A failure of the command as a whole (network, write concern) is raised.
        """
        try:
            result = await self.client.bulk_write(
                models, session=session, ordered=False, verbose_results=True
            )
            errors: dict[int, Document] = {}
        except ClientBulkWriteException as exc:
            if exc.error is not None:
                raise (
                    exc.error
                    if isinstance(exc.error, BaseException)
                    else WriteError(str(exc.error))
                ) from exc
            if exc.write_concern_errors:
                raise WriteConcernError(str(exc.write_concern_errors)) from exc
            errors = {int(e["idx"]): e for e in exc.details.get("writeErrors") or []}
            if exc.partial_result is None:
                return {}, errors
            result = exc.partial_result
        # Inside a transaction the first error stops the batch: later operations have
        # neither a result nor an error (they run again in the next transaction).
        outcomes: dict[int, Any] = {}
        for index, model in enumerate(models):
            results: Mapping[int, Any] = (
                result.insert_results if isinstance(model, InsertOne)
                else result.delete_results if isinstance(model, DeleteOne)
                else result.update_results
            )  # fmt: skip
            if index not in errors and index in results:
                outcomes[index] = results[index]
        return outcomes, errors

    async def _bulk_in_transactions(
        self, models: list[WriteModel]
    ) -> tuple[dict[int, Any], dict[int, Document]]:
        """The batch as one transaction: one commit (one log sync on a store that syncs
        every commit) instead of one per document.

        The operations are independent; the transaction only groups their commit. An
        operation that fails (e.g. a duplicate key) aborts the transaction: it keeps its
        error as its outcome and the others run again in a new transaction.
        """
        remaining = list(range(len(models)))
        failed: dict[int, Document] = {}
        conflicts = 0
        while remaining:
            batch = [models[i] for i in remaining]

            async def run(session: AsyncClientSession, batch: list[WriteModel] = batch) -> Any:
                outcomes, errors = await self._bulk(batch, session)
                if errors:
                    raise _Failed(errors)  # aborts the transaction
                return outcomes

            try:
                # Not causally consistent: a retried transaction would send a readConcern
                # with its bulkWrite, which the local store refuses.
                async with self.client.start_session(causal_consistency=False) as session:
                    outcomes = await session.with_transaction(run)
            except _Failed as some:
                own = {i: e for i, e in some.errors.items() if e.get("code") != WRITE_CONFLICT}
                if len(own) < len(some.errors):  # another writer had the document: again
                    conflicts += 1
                    if conflicts > MAX_CONFLICT_RETRIES:
                        raise StoreContention("write conflicts persisted") from None
                    await asyncio.sleep(0.002 * conflicts)  # back-off, not synchronisation
                failed |= {remaining[i]: error for i, error in own.items()}
                remaining = [index for i, index in enumerate(remaining) if i not in own]
                continue
            return {remaining[i]: outcome for i, outcome in outcomes.items()}, failed
        return {}, failed

    @staticmethod
    def _fail_all(writes: list[tuple[WriteModel, asyncio.Future[Any]]], exc: BaseException) -> None:
        for _, future in writes:
            if not future.done():
                future.set_exception(exc)

    async def _run_alone(self, model: WriteModel, future: asyncio.Future[Any]) -> None:
        database, name = str(model._namespace).split(".", 1)
        collection: AsyncCollection[Document] = AsyncCollection(self.client[database], name)
        try:
            if isinstance(model, InsertOne):
                outcome: Any = await AsyncCollection.insert_one(collection, model._doc)
            elif isinstance(model, UpdateOne):
                outcome = await AsyncCollection.update_one(
                    collection, model._filter, model._doc, upsert=bool(model._upsert)
                )
            elif isinstance(model, ReplaceOne):
                outcome = await AsyncCollection.replace_one(
                    collection, model._filter, model._doc, upsert=bool(model._upsert)
                )
            else:
                outcome = await AsyncCollection.delete_one(collection, model._filter)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(outcome)


class _Failed(Exception):
    """Some operations of a transaction failed on their own (their errors by index)."""

    def __init__(self, errors: dict[int, Document]) -> None:
        super().__init__(f"{len(errors)} operation(s) failed")
        self.errors = errors


def _write_error(error: Document) -> WriteError:
    message, code = str(error.get("errmsg", "write error")), int(error.get("code", 0))
    if code == 11000:
        return DuplicateKeyError(message, code, error)
    return WriteError(message, code, error)


class CoalescingCollection(AsyncCollection[Document]):
    """An AsyncCollection whose simple single-document calls go through a StoreBatcher.

    Anything else (other filters, options, sessions) is the plain AsyncCollection call.
    """

    batcher: StoreBatcher

    async def find_one(self, filter: Any | None = None, *args: Any, **kwargs: Any) -> Any:
        projection = args[0] if len(args) == 1 and not kwargs else kwargs.get("projection")
        simple = (len(args) + len(kwargs) <= 1 and (not kwargs or "projection" in kwargs)
                  and isinstance(filter, Mapping) and list(filter) == ["_id"]
                  and isinstance(filter["_id"], SCALAR_ID)
                  and (projection is None or (isinstance(projection, Mapping)
                                              and projection.get("_id", 1))))  # fmt: skip
        if not simple or not isinstance(filter, Mapping):
            return await super().find_one(filter, *args, **kwargs)
        return await self.batcher.find_by_id(self, filter["_id"], projection)

    async def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> InsertOneResult:
        if args or kwargs:
            return await super().insert_one(document, *args, **kwargs)
        result: InsertOneResult = await self.batcher.write(
            InsertOne(document, namespace=self.full_name)
        )
        return result

    async def update_one(
        self, filter: Mapping[str, Any], update: Any, upsert: bool = False, *args: Any,
        **kwargs: Any,
    ) -> UpdateResult:  # fmt: skip
        if args or kwargs or not isinstance(update, Mapping):
            return await super().update_one(filter, update, upsert, *args, **kwargs)
        result: UpdateResult = await self.batcher.write(
            UpdateOne(filter, update, upsert=upsert, namespace=self.full_name)
        )
        return result

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], upsert: bool = False,
        *args: Any, **kwargs: Any,
    ) -> UpdateResult:  # fmt: skip
        if args or kwargs:
            return await super().replace_one(filter, replacement, upsert, *args, **kwargs)
        result: UpdateResult = await self.batcher.write(
            ReplaceOne(filter, dict(replacement), upsert=upsert, namespace=self.full_name)
        )
        return result

    async def delete_one(
        self, filter: Mapping[str, Any], *args: Any, **kwargs: Any
    ) -> DeleteResult:
        if args or kwargs:
            return await super().delete_one(filter, *args, **kwargs)
        result: DeleteResult = await self.batcher.write(DeleteOne(filter, namespace=self.full_name))
        return result


class CoalescingDatabase(AsyncDatabase[Document]):
    """A database whose collections coalesce their simple calls (see CoalescingCollection)."""

    def __init__(
        self, client: AsyncMongoClient[Document], name: str, batcher: StoreBatcher
    ) -> None:
        super().__init__(client, name)
        self.batcher = batcher

    def __getitem__(self, name: str) -> AsyncCollection[Document]:
        collection = CoalescingCollection(self, name)
        collection.batcher = self.batcher
        return collection

    def get_collection(self, name: str, *args: Any, **kwargs: Any) -> AsyncCollection[Document]:
        if args or kwargs:
            return super().get_collection(name, *args, **kwargs)
        return self[name]
