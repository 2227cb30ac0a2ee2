/* Unit tests: request signing against Binance's published example. */
#include "binance.h"
#include "check.h"
#include "config.h"

TEST(signature_matches_binance_documentation)
{
    /* The HMAC SHA256 example of the Binance API documentation (key, query, signature). */
    char sig[65];
    binance_sign("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
                 "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&"
                 "timestamp=1499827319559",
                 sig);
    CHECK_STR(sig, "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71");
}

TEST(signature_depends_on_every_byte)
{
    char a[65], b[65];
    binance_sign("k", "symbol=BTCUSDT&timestamp=1", a);
    binance_sign("k", "symbol=BTCUSDT&timestamp=2", b);
    CHECK(strcmp(a, b) != 0);
    binance_sign("K", "symbol=BTCUSDT&timestamp=1", b);
    CHECK(strcmp(a, b) != 0);
    CHECK_EQ(strlen(a), 64);
}

TEST(config_from_environment)
{
    binance_config_t c;
    char err[256];
    unsetenv("QT_BINANCE_BASE_URL");
    setenv("QT_BINANCE_API_KEY", "abc", 1);
    unsetenv("QT_BINANCE_API_SECRET");
    CHECK_EQ(config_get_binance(&c, NULL, err, sizeof err), 0);
    CHECK_STR(c.base_url, BINANCE_TESTNET); /* the testnet unless told otherwise */
    CHECK_STR(c.api_key, "abc");
    CHECK_EQ(c.recv_window_ms, 5000);
    setenv("QT_BINANCE_BASE_URL", "ftp://x", 1);
    CHECK_EQ(config_get_binance(&c, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "QT_BINANCE_BASE_URL");
    unsetenv("QT_BINANCE_BASE_URL");
    unsetenv("QT_BINANCE_API_KEY");
}

CHECK_MAIN()
