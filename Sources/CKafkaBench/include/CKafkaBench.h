#ifndef CKAFKABENCH_H
#define CKAFKABENCH_H
#include <stddef.h>

/// Plain-C librdkafka loops the benchmark compares the Swift wrapper against.
typedef struct ckb_producer ckb_producer;
typedef struct ckb_consumer ckb_consumer;

/// A producer with the wrapper's defaults (enable.idempotence=true, linger.ms=5) and a held topic handle.
ckb_producer *ckb_producer_new(const char *brokers, const char *topic);
/// Produces `count` messages of `size` bytes round-robin over `partitions` partitions, then flushes; returns how many were delivered.
long ckb_producer_run(ckb_producer *producer, long count, size_t size, int partitions);
void ckb_producer_destroy(ckb_producer *producer);

/// A subscribed group consumer (auto.offset.reset=earliest).
ckb_consumer *ckb_consumer_new(const char *brokers, const char *topic, const char *group);
/// Polls until the group has assigned partitions (so joining is not measured).
void ckb_consumer_wait_assigned(ckb_consumer *consumer);
/// Consumes `count` messages with rd_kafka_consumer_poll, touching each payload; returns how many
/// were read and, in `seconds`, the time from the first message to the last.
long ckb_consumer_run(ckb_consumer *consumer, long count, long *checksum, double *seconds);
void ckb_consumer_destroy(ckb_consumer *consumer);

#endif
