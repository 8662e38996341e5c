#ifndef CRDKAFKA_SHIM_H
#define CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/// rd_kafka_producev is variadic and so invisible to Swift; this fixed-argument form produces
/// through a held topic handle with optional headers (ownership of `headers` passes to
/// librdkafka only when the call succeeds).
static inline rd_kafka_resp_err_t crdkafka_produce(rd_kafka_t *rk,
                                                   rd_kafka_topic_t *rkt,
                                                   int32_t partition,
                                                   const void *value, size_t value_len,
                                                   const void *key, size_t key_len,
                                                   rd_kafka_headers_t *headers,
                                                   void *msg_opaque) {
        if (headers)
                return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt),
                                         RD_KAFKA_V_PARTITION(partition),
                                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                         RD_KAFKA_V_VALUE((void *)value, value_len),
                                         RD_KAFKA_V_KEY(key, key_len),
                                         RD_KAFKA_V_HEADERS(headers),
                                         RD_KAFKA_V_OPAQUE(msg_opaque),
                                         RD_KAFKA_V_END);
        if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)value,
                             value_len, key, key_len, msg_opaque) == -1)
                return rd_kafka_last_error();
        return RD_KAFKA_RESP_ERR_NO_ERROR;
}

#endif
