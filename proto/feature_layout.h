/* feature_layout.h — the 64-dim observation's layout, version 1: index → name →
 * scaling. Training and live code both build observations from this table
 * (libcommon/obs.c); it never differs between them. Changing it means a
 * new version and retrained models. */
#ifndef QT_FEATURE_LAYOUT_H
#define QT_FEATURE_LAYOUT_H

#define FEATURES_DIM 64
#define FEATURES_VERSION 1

typedef struct feature_spec {
    int index;
    const char *name;
    const char *scaling;
} feature_spec_t;

extern const feature_spec_t features_layout[FEATURES_DIM];

#endif
