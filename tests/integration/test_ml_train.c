/* Integration tests: the real ml-train binary — seeded and reproducible
 * (the same command writes byte-identical member files), its report, CSV
 * input with a bad row named by file and line, and usage errors. */
#include "check.h"
#include "harness.h"
#include "mlmodel.h"

#include <sys/wait.h>

static char bin[256], dir[256], out[1 << 16], errpath[300];

/* Run ml-train with args; stdout into out, stderr into errpath; the exit code. */
static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", bin, args, errpath);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long slurp(const char *path, char *buf, long len)
{
    FILE *f = fopen(path, "rb");
    long n = f ? (long)fread(buf, 1, (size_t)len, f) : -1;
    if (f) fclose(f);
    return n;
}

TEST(seeded_runs_write_identical_members_and_report_them)
{
    static char a[1 << 17], b[1 << 17];
    char args[600], p1[400], p2[400], err[512];
    const char *names[] = {"gbdt-deep", "gbdt-shallow", "softmax", "mlp-returns"};
    for (int run_no = 1; run_no <= 2; run_no++) {
        snprintf(args, sizeof args, "--symbols 1 --bars 3000 --seed 5 --out-dir %s/r%d --version t-1", dir, run_no);
        char mk[400];
        snprintf(mk, sizeof mk, "mkdir -p %s/r%d", dir, run_no);
        CHECK_EQ(system(mk), 0);
        CHECK_EQ(run(args), 0);
    }
    CHECK_CONTAINS(out, "ml-train: baseline (class prior) held-out accuracy=");
    for (int i = 0; i < 4; i++) {
        char line[128];
        snprintf(line, sizeof line, "ml-train: member %s kind=", names[i]);
        CHECK_CONTAINS(out, line);
        snprintf(p1, sizeof p1, "%s/r1/%s.bin", dir, names[i]);
        snprintf(p2, sizeof p2, "%s/r2/%s.bin", dir, names[i]);
        long n1 = slurp(p1, a, sizeof a), n2 = slurp(p2, b, sizeof b);
        CHECK(n1 > 0 && n1 == n2 && memcmp(a, b, (size_t)n1) == 0); /* byte-identical */
        mlm_t m;
        CHECK_EQ(mlm_load(&m, p1, err, sizeof err), 0);
        CHECK_STR(m.name, names[i]);
        CHECK_STR(m.version, "t-1");
        mlm_free(&m);
    }
    CHECK_CONTAINS(out, "held-out accuracy=");
    CHECK_CONTAINS(out, "brier=");
    char prog[4096];
    slurp(errpath, prog, sizeof prog - 1);
    CHECK(strstr(prog, "round 1/40") || strstr(prog, "epoch 1/")); /* progress on stderr */
}

TEST(csv_input_bad_rows_and_usage_errors)
{
    char csv[300], args[700], e[4096] = "";
    snprintf(csv, sizeof csv, "%s/BTCUSDT-1m.csv", dir);
    FILE *f = fopen(csv, "w");
    double p = 100;
    for (int i = 0; i < 3000; i++) {
        double c = p * (1 + 0.003 * sin(i * 0.3) + 0.0002);
        long long t = 1714521600000LL + i * 60000LL;
        if (i == 7) fprintf(f, "%lld,oops,1,1,1,1,%lld,0,0,0,0,0\n", t, t + 59999);
        else fprintf(f, "%lld,%.4f,%.4f,%.4f,%.4f,3,%lld,0,0,0,0,0\n", t, p, fmax(p, c) * 1.001, fmin(p, c) * 0.999, c, t + 59999);
        p = c;
    }
    fclose(f);
    snprintf(args, sizeof args, "--csv %s --out-dir %s --names a,b,c,d", csv, dir);
    CHECK_EQ(run(args), 0);
    slurp(errpath, e, sizeof e - 1);
    CHECK_CONTAINS(e, "1 bad rows skipped, first: ");
    CHECK_CONTAINS(e, "BTCUSDT-1m.csv:8: open 'oops' is not a number");
    CHECK_CONTAINS(out, "ml-train: member c kind=softmax");
    CHECK_EQ(run("--csv /nonexistent/x.csv"), 1);
    memset(e, 0, sizeof e);
    slurp(errpath, e, sizeof e - 1);
    CHECK_CONTAINS(e, "/nonexistent/x.csv");
    CHECK_EQ(run("--names a,,c"), 2);
    CHECK_EQ(run("--holdout 2"), 2);
    memset(e, 0, sizeof e);
    slurp(errpath, e, sizeof e - 1);
    CHECK_CONTAINS(e, "usage: ml-train"); /* a usage error explains itself */
    CHECK_EQ(run("--help"), 0);
    CHECK_CONTAINS(out, "usage: ml-train");
}

int main(int argc, char **argv);

__attribute__((constructor)) static void setup(void)
{
    th_watchdog(300);
    th_bin("bin/ml-train", bin, sizeof bin);
    th_tempdir(dir, sizeof dir);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
}

CHECK_MAIN()
