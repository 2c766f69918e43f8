/* sensor.h - the shared block a sensor publishes (one writer, any number of
 * readers). Readers include this header; labctl reads it too
 * (layout: {header: ..., struct: sensor_block}), so nothing is written twice.
 *
 * The layout has padding on purpose: after `version` (to align `ratio`),
 * inside `struct calibration` (after `gain`) and at its end. */
#ifndef SENSOR_H
#define SENSOR_H

#include <stdint.h>

#define SENSOR_MAGIC 0x53454e53u /* "SNES" read little-endian */
#define SENSOR_CHANNELS 4
#define SENSOR_NAME_LEN 24

enum sensor_state { SENSOR_IDLE = 0, SENSOR_RUNNING = 1, SENSOR_FAULT = 2 };

struct calibration {
    float gain;
    double offset;
    uint16_t table[3];
};

struct sensor_block {
    uint32_t magic;
    char name[SENSOR_NAME_LEN];
    uint8_t version;
    double ratio;
    float temps[SENSOR_CHANNELS];
    int16_t matrix[2][3];
    struct calibration cal;
    enum sensor_state state;
    _Bool healthy;
    uint64_t samples; /* rises while the sensor runs */
    unsigned char serial[6];
};

#endif
