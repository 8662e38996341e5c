#include "CKafkaBench.h"
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ckb_producer {
        rd_kafka_t *rk;
        rd_kafka_topic_t *rkt;
        long delivered;
};

struct ckb_consumer {
        rd_kafka_t *rk;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
        struct ckb_producer *p = opaque;
        if (!msg->err)
                p->delivered++;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
        char err[512];
        if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK)
                fprintf(stderr, "%s: %s\n", name, err);
}

ckb_producer *ckb_producer_new(const char *brokers, const char *topic) {
        struct ckb_producer *p = calloc(1, sizeof *p);
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];
        set(conf, "bootstrap.servers", brokers);
        set(conf, "enable.idempotence", "true");
        set(conf, "linger.ms", "5");
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, p);
        p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (!p->rk) {
                fprintf(stderr, "%s\n", err);
                exit(1);
        }
        p->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
        return p;
}

long ckb_producer_run(ckb_producer *p, long count, size_t size, int partitions) {
        char *payload = malloc(size);
        memset(payload, 'x', size);
        long start = p->delivered;
        for (long i = 0; i < count; i++) {
                while (rd_kafka_produce(p->rkt, (int32_t)(i % partitions), RD_KAFKA_MSG_F_COPY,
                                        payload, size, NULL, 0, NULL) == -1) {
                        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                fprintf(stderr, "produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
                                free(payload);
                                return p->delivered - start;
                        }
                        rd_kafka_poll(p->rk, 1);
                }
                rd_kafka_poll(p->rk, 0);
        }
        rd_kafka_flush(p->rk, 60000);
        free(payload);
        return p->delivered - start;
}

void ckb_producer_destroy(ckb_producer *p) {
        rd_kafka_topic_destroy(p->rkt);
        rd_kafka_destroy(p->rk);
        free(p);
}

ckb_consumer *ckb_consumer_new(const char *brokers, const char *topic, const char *group) {
        struct ckb_consumer *c = calloc(1, sizeof *c);
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];
        set(conf, "bootstrap.servers", brokers);
        set(conf, "group.id", group);
        set(conf, "auto.offset.reset", "earliest");
        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!c->rk) {
                fprintf(stderr, "%s\n", err);
                exit(1);
        }
        rd_kafka_poll_set_consumer(c->rk);
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(c->rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        return c;
}

void ckb_consumer_wait_assigned(ckb_consumer *c) {
        for (int i = 0; i < 300; i++) {
                rd_kafka_topic_partition_list_t *assignment = NULL;
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 100);
                if (msg)
                        rd_kafka_message_destroy(msg);
                rd_kafka_assignment(c->rk, &assignment);
                int assigned = assignment && assignment->cnt > 0;
                if (assignment)
                        rd_kafka_topic_partition_list_destroy(assignment);
                if (assigned)
                        return;
        }
}

long ckb_consumer_run(ckb_consumer *c, long count, long *checksum, double *seconds) {
        long seen = 0, idle = 0;
        struct timespec first = {0, 0}, last = {0, 0};
        while (seen < count && idle < 30) {
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 1000);
                if (!msg) {
                        idle++;
                        continue;
                }
                idle = 0;
                if (!msg->err) {
                        if (seen == 0)
                                clock_gettime(CLOCK_MONOTONIC, &first);
                        seen++;
                        *checksum += (long)msg->len + (msg->len ? ((const unsigned char *)msg->payload)[0] : 0);
                }
                rd_kafka_message_destroy(msg);
        }
        clock_gettime(CLOCK_MONOTONIC, &last);
        *seconds = (double)(last.tv_sec - first.tv_sec) + (double)(last.tv_nsec - first.tv_nsec) / 1e9;
        return seen;
}

void ckb_consumer_destroy(ckb_consumer *c) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
        free(c);
}
