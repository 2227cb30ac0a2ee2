/* Unit tests: text from outside made valid UTF-8 for JSON, and log lines
 * that carry such text are written, escaped, not dropped. */
#include "check.h"
#include "log.h"
#include "utf8.h"

#include <stdio.h>
#include <unistd.h>

TEST(valid_text_passes_unchanged_and_invalid_bytes_are_escaped)
{
    CHECK(utf8_valid("plain", 5));
    CHECK(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
    CHECK(!utf8_valid("\xff", 1));
    CHECK(!utf8_valid("\xc0\xaf", 2));         /* overlong */
    CHECK(!utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    CHECK(!utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    CHECK(!utf8_valid("\xe2\x82", 2));         /* cut short */
    size_t n;
    char *e = utf8_escape("a\xff\xc3\xa9z\xe2\x82", 7, &n);
    CHECK_STR(e, "a\\xFF\xc3\xa9z\\xE2\\x82");
    CHECK_EQ(n, strlen(e));
    free(e);
    json_t *j = utf8_json_string("k\xfe", 2);
    char *s = json_dumps(j, JSON_ENCODE_ANY);
    CHECK_STR(s, "\"k\\\\xFE\"");
    free(s);
    json_decref(j);
}

TEST(a_log_line_with_invalid_bytes_is_written_escaped)
{
    char path[] = "/tmp/qt-log-XXXXXX", buf[4096] = "";
    int fd = mkstemp(path), saved = dup(2);
    CHECK(fd >= 0);
    dup2(fd, 2);
    log_init("test-utf8", "info");
    log_info("field value %s", "BT\xff");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[got] = '\0';
    if (f) fclose(f);
    close(fd);
    unlink(path);
    CHECK_CONTAINS(buf, "field value BT\\\\xFF");
}

CHECK_MAIN()
