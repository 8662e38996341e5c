// Kafka — a Swift wrapper over librdkafka (producer, consumer, admin, mock cluster).
// Knows no arrayfsm word and no SQL.
internal import CRdkafka
internal import Foundation
internal import Logging

/// The consumer's dedicated poll thread and the state its rebalance callback works on.
///
/// All `rd_kafka_consumer_poll` calls — and so all rebalance callbacks — happen on this one
/// thread, away from Swift's cooperative pool. A revocation ends the current poll early with a
/// `.revoked` event and then blocks inside the callback until the caller's next `poll` (or
/// `close`): that is how the caller gets to finish in-flight work before the partitions go.
final class ConsumerPollLoop: ClientContext, @unchecked Sendable {
    struct Request {
        var maxMessages: Int
        var timeout: Duration
        var continuation: CheckedContinuation<Result<KafkaPollResult, KafkaError>, Never>
    }

    /// One poll call being served: the messages and events gathered so far.
    final class Round {
        let request: Request
        let deadline: ContinuousClock.Instant
        var messages: [UnsafeMutablePointer<rd_kafka_message_t>] = []
        var events: [KafkaRebalanceEvent] = []

        init(_ request: Request) {
            self.request = request
            deadline = .now + request.timeout
        }
    }

    // Guarded by `mailbox`.
    private let mailbox = NSCondition()
    private var pendingRequest: Request?
    private var closeRequested = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var isClosed = false

    // Touched only on the poll thread.
    private var current: Round?
    private var closing = false
    private weak var handle: KafkaClientHandle?

    /// Starts the poll thread for `handle`; the thread keeps the handle alive until it exits.
    func start(handle: KafkaClientHandle) {
        self.handle = handle
        let thread = Thread { [self] in run(handle) }
        thread.name = "kafka-consumer-poll"
        thread.start()
    }

    /// Hands a poll request to the thread; only one may be outstanding.
    func submit(_ request: Request) {
        mailbox.lock()
        if isClosed || closeRequested {
            mailbox.unlock()
            request.continuation.resume(returning: .failure(.closed))
            return
        }
        if pendingRequest != nil {
            mailbox.unlock()
            request.continuation.resume(returning: .failure(KafkaError(code: KafkaError.stateCode, message: "poll is already in progress")))
            return
        }
        pendingRequest = request
        mailbox.signal()
        mailbox.unlock()
    }

    /// Asks the thread to close the consumer; returns once `rd_kafka_consumer_close` is done.
    func close() async {
        await withCheckedContinuation { continuation in
            mailbox.lock()
            if isClosed {
                mailbox.unlock()
                continuation.resume()
                return
            }
            closeRequested = true
            closeWaiters.append(continuation)
            mailbox.signal()
            mailbox.unlock()
        }
    }

    /// Asks for a close without waiting (used by `deinit`).
    func requestClose() {
        mailbox.lock()
        closeRequested = true
        mailbox.signal()
        mailbox.unlock()
    }

    private func run(_ handle: KafkaClientHandle) {
        while true {
            mailbox.lock()
            while pendingRequest == nil && !closeRequested { mailbox.wait() }
            let request = pendingRequest.take()
            mailbox.unlock()
            guard let request else { break }
            current = Round(request)
            serveRounds(handle)
        }
        closing = true
        let result = rd_kafka_consumer_close(handle.pointer)
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { logger.warning("consumer close: \(KafkaError(result))") }
        mailbox.lock()
        isClosed = true
        let waiters = closeWaiters
        closeWaiters = []
        let late = pendingRequest.take()
        mailbox.unlock()
        late?.continuation.resume(returning: .failure(.closed))
        for waiter in waiters { waiter.resume() }
    }

    private func serveRounds(_ handle: KafkaClientHandle) {
        let client = handle.pointer
        while let round = current {
            var wait: Int32 = 0
            if round.messages.isEmpty && round.events.isEmpty {
                let left = ContinuousClock.now.duration(to: round.deadline)
                wait = left <= .zero ? 0 : left.milliseconds
            }
            let message = rd_kafka_consumer_poll(client, wait)
            // The rebalance callback may have finished the round and started the next one.
            guard let round = current else {
                if let message { rd_kafka_message_destroy(message) }
                return
            }
            if let message {
                let error = message.pointee.err
                if error == RD_KAFKA_RESP_ERR_NO_ERROR {
                    round.messages.append(message)
                } else {
                    rd_kafka_message_destroy(message)
                    if let fatal = KafkaError.fatal(of: client) {
                        finish(round, failure: fatal)
                        continue
                    }
                    if error != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                        logger.warning("consumer error: \(KafkaError(error))")
                    }
                }
                if round.messages.count >= round.request.maxMessages { finish(round) }
            } else if wait == 0 || ContinuousClock.now >= round.deadline {
                finish(round)
            }
        }
    }

    private func finish(_ round: Round, failure: KafkaError? = nil) {
        current = nil
        if let failure {
            for pointer in round.messages { rd_kafka_message_destroy(pointer) }
            round.request.continuation.resume(returning: .failure(failure))
            return
        }
        guard let handle else { return }
        let storage = ConsumedMessageStorage(pointers: round.messages, handle: handle)
        let messages = storage.pointers.map { KafkaMessage(pointer: $0, storage: storage) }
        round.request.continuation.resume(returning: .success(KafkaPollResult(messages: messages, rebalanceEvents: round.events)))
    }

    /// Called from `kafkaRebalanceCallback`, on this thread.
    func rebalance(client: OpaquePointer, error: rd_kafka_resp_err_t,
                   partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let list = NativePartitionList.partitions(of: partitions)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(client)) == "COOPERATIVE"
        switch error {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            if cooperative {
                if let failure = rd_kafka_incremental_assign(client, partitions) { logger.error("assign: \(KafkaError(consuming: failure))") }
            } else {
                let result = rd_kafka_assign(client, partitions)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR { logger.error("assign: \(KafkaError(result))") }
            }
            current?.events.append(.assigned(list))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            if rd_kafka_assignment_lost(client) != 0 {
                current?.events.append(.lost(list))
            } else {
                if !closing, let round = current {
                    round.events.append(.revoked(list))
                    finish(round)
                    waitForAcknowledgement()
                }
                // Commit what the caller stored before the partitions move. A nil list commits the
                // stored offsets of the current assignment; the list handed to this callback carries
                // INVALID offsets, so committing it would commit nothing.
                let result = rd_kafka_commit(client, nil, 0)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR && result != RD_KAFKA_RESP_ERR__NO_OFFSET {
                    logger.warning("commit on revoke: \(KafkaError(result))")
                }
            }
            if cooperative {
                if let failure = rd_kafka_incremental_unassign(client, partitions) { logger.error("unassign: \(KafkaError(consuming: failure))") }
            } else {
                rd_kafka_assign(client, nil)
            }
        default:
            logger.error("rebalance error: \(KafkaError(error))")
            rd_kafka_assign(client, nil)
        }
    }

    /// Blocks the poll thread until the caller polls again (its acknowledgement) or closes.
    private func waitForAcknowledgement() {
        mailbox.lock()
        while pendingRequest == nil && !closeRequested { mailbox.wait() }
        let next = pendingRequest.take()
        mailbox.unlock()
        if let next { current = Round(next) } else { closing = true }
    }
}

/// librdkafka's rebalance callback: a free function, run inside `rd_kafka_consumer_poll` on the poll thread.
func kafkaRebalanceCallback(_ client: OpaquePointer?, _ error: rd_kafka_resp_err_t,
                            _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                            _ opaque: UnsafeMutableRawPointer?) {
    guard let client, let opaque else { return }
    Unmanaged<ConsumerPollLoop>.fromOpaque(opaque).takeUnretainedValue()
        .rebalance(client: client, error: error, partitions: partitions)
}
