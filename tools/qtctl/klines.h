/* klines.h — qtctl klines fetch | synth: bars to backtest on (klines.c). */
#ifndef QT_QTCTL_KLINES_H
#define QT_QTCTL_KLINES_H

/* argv[0] is "klines"; the exit code. */
int klines_main(int argc, char **argv);

#endif
