// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
extension ServiceMetrics {
    /// The `# HELP` text of every metric in ``names`` (serve's exporter emits it; a test checks that
    /// no name lacks one). One line each: what the metric counts or measures, and its labels.
    public static let help: [String: String] = [
        "arrayfsm_commands_total": "Commands handled, by type and status (ok, rejected, duplicate, dead_letter).",
        "arrayfsm_dead_letters_total": "Messages that were not usable commands, sent to the dead-letter topic.",
        "arrayfsm_transitions_total": "Rows moved per FSM transition, by entity (task, task_instance), from and to status (from=new: inserted).",
        "arrayfsm_batch_commands": "Commands applied per database transaction.",
        "arrayfsm_db_transaction_seconds": "Time of one command batch's database transaction, commit included.",
        "arrayfsm_end_to_end_seconds": "Time from a command's Kafka produce timestamp until it was applied and committed.",
        "arrayfsm_batch_failures_total": "Command batches not applied (database unreachable, transaction error); each is retried with backoff.",
        "arrayfsm_consumer_lag": "Messages behind on the commands topic, over this instance's assigned partitions.",
        "arrayfsm_outbox_depth": "Events waiting in the outbox table (shared by all instances: the same value on each).",
        "arrayfsm_outbox_published_total": "Events this instance's outbox relay published.",
        "arrayfsm_processed_commands_rows": "Rows in the processed-commands table (PostgreSQL's live-row statistic), sampled by the retention sweep.",
        "arrayfsm_processed_commands_deleted_total": "Processed-command rows this instance deleted past the retention.",
        "arrayfsm_outbox_parked_rows": "Outbox rows parked because they could not be delivered.",
        "arrayfsm_outbox_parked_total": "Outbox rows this instance's relay parked because they could not be delivered.",
        "arrayfsm_outbox_delivery_failures_total": "Failed attempts of this instance's relay to deliver an outbox row.",
        "arrayfsm_consumer_paused": "1 while this instance's consumer fetches no commands because the outbox holds more than --max-outbox-rows rows, else 0.",
    ]
}
