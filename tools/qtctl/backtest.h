/* backtest.h — `qtctl backtest`: the real stack (the five service binaries)
 * on a private redis-server, the CSV files replayed at full speed through the
 * paper venue in PRIMARY or HYBRID, then a report computed from the events
 * (trades from position.closed, fees from trade.executed, the equity curve
 * from performance.update) next to buy-and-hold of the same bars, and the
 * equity curves as an SVG file. */
#ifndef QT_BACKTEST_H
#define QT_BACKTEST_H

/* argv[0] is "backtest". Exit code: 0 done, 1 the run failed (a service did
 * not start, a file is unreadable, a timeout), 2 usage. */
int backtest_main(int argc, char **argv);

#endif
