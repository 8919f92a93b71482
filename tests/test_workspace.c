/* The workspace plugin's own pieces, linked from its sources: path containment (".."
 * and symbolic links out of the session's directory refused), the edit replacement and
 * its diff (applied back, it gives the new text), output capping, glob matching, the
 * tree walks, and bash_exec (timeouts and cancels that leave no process of the group
 * alive, an environment without secrets, SIGPIPE restored for the command). The .so
 * itself runs in a real gateway in tests/node/workspace.test.mjs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bash.h"
#include "diff.h"
#include "edit.h"
#include "git.h"
#include "glob.h"
#include "outcap.h"
#include "paths.h"
#include "search.h"
#include "snap.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tree[PATH_MAX]; /* a temporary tree, made per test that needs one */

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void put(const char *rel, const char *text)
{
	char p[PATH_MAX * 2], dir[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", tree, rel);
	snprintf(dir, sizeof(dir), "%s", p);
	for (char *s = dir + strlen(tree) + 1; (s = strchr(s, '/')); s++) {
		*s = 0;
		mkdir(dir, 0755);
		*s = '/';
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int make_tree(void **state)
{
	snprintf(tree, sizeof(tree), "/tmp/ws-test-XXXXXX");
	assert_non_null(mkdtemp(tree));
	char real[PATH_MAX];
	assert_non_null(realpath(tree, real));
	snprintf(tree, sizeof(tree), "%s", real);
	return 0;
}

static int drop_tree(void **state)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tree);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- paths ---------------------------------------------------------------------------- */

static void resolves(const char *path, const char *want_rel)
{
	char out[PATH_MAX], why[512] = "";
	if (paths_resolve(tree, path, out, sizeof(out), why, sizeof(why)))
		fail_msg("%s refused: %s", path, why);
	assert_string_equal(paths_rel(tree, out), want_rel);
}

static void refused(const char *path, const char *needle)
{
	char out[PATH_MAX], why[512] = "";
	if (!paths_resolve(tree, path, out, sizeof(out), why, sizeof(why)))
		fail_msg("%s was allowed (to %s)", path, out);
	if (!strstr(why, needle) || !strstr(why, path))
		fail_msg("%s: reason \"%s\" does not name the path and \"%s\"", path, why, needle);
}

static void normalize_collapses_dots_and_slashes(void **state)
{
	const char *cases[][2] = {{"/a/./b/../c", "/a/c"}, {"//a//b/", "/a/b"}, {"/..", "/"},
				  {"/a/b/../../..", "/"}, {"/", "/"}, {"/a/.../b", "/a/.../b"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char p[64];
		snprintf(p, sizeof(p), "%s", cases[i][0]);
		paths_normalize(p);
		assert_string_equal(p, cases[i][1]);
	}
}

static void paths_inside_the_root_resolve(void **state)
{
	char abs[PATH_MAX + 16];
	put("src/a.c", "x");
	resolves("src/a.c", "src/a.c");
	resolves("./src/../src/a.c", "src/a.c");
	resolves("", ".");
	resolves("new/dir/file.txt", "new/dir/file.txt"); /* not there yet: plain names */
	snprintf(abs, sizeof(abs), "%s/src/a.c", tree);
	resolves(abs, "src/a.c");
	char link[PATH_MAX + 16];
	snprintf(link, sizeof(link), "%s/inside", tree);
	assert_int_equal(symlink("src", link), 0);
	resolves("inside/a.c", "src/a.c"); /* a link that stays inside is followed */
}

static void dotdot_and_absolute_paths_out_of_the_root_are_refused(void **state)
{
	refused("../x", "outside the session's directory");
	refused("src/../../etc/passwd", "outside the session's directory");
	refused("/etc/passwd", "outside the session's directory");
	refused("missing/../../x", "outside");
	put("f", "x");
	refused("nothere/../f", "does not exist"); /* ".." after a name that is not there */
}

static void symlinks_out_of_the_root_are_refused(void **state)
{
	char link[PATH_MAX + 16];
	snprintf(link, sizeof(link), "%s/out", tree);
	assert_int_equal(symlink("/etc", link), 0);
	refused("out/passwd", "symbolic link");
	refused("out/newfile", "symbolic link"); /* a file to create through it too */
	snprintf(link, sizeof(link), "%s/dangling", tree);
	assert_int_equal(symlink("/tmp/ws-test-nowhere/x", link), 0);
	refused("dangling", "symbolic link"); /* writing it would create the target */
}

/* ---- edit and diff -------------------------------------------------------------------- */

/* Applies a unified diff to a (the hunks in order); the result, malloc'd. */
static char *apply(const char *a, const char *diff)
{
	size_t cap = strlen(a) + strlen(diff) + 1, o = 0;
	char *out = malloc(cap);
	const char *ap = a, *d = strstr(diff, "@@");
	int aline = 1;
	while (d && !strncmp(d, "@@ -", 4)) {
		int as = 0, ac = 0;
		sscanf(d, "@@ -%d,%d", &as, &ac);
		int start = ac ? as : as + 1;
		for (; aline < start; aline++) { /* unchanged lines before the hunk */
			const char *nl = strchr(ap, '\n');
			size_t n = nl ? (size_t)(nl - ap) + 1 : strlen(ap);
			memcpy(out + o, ap, n), o += n, ap += n;
		}
		d = strchr(d, '\n') + 1;
		while (*d == ' ' || *d == '-' || *d == '+') {
			const char *nl = strchr(d, '\n');
			size_t n = (size_t)(nl - d);
			int noeol = !strncmp(nl + 1, "\\ No newline", 12);
			if (*d != '-')
				memcpy(out + o, d + 1, n - 1 + !noeol), o += n - 1 + !noeol;
			if (*d != '+') {
				assert_memory_equal(ap, d + 1, n - 1); /* the context is a's */
				ap += n - 1 + !noeol;
				aline++;
			}
			d = nl + 1;
			if (noeol)
				d = strchr(d, '\n') + 1;
		}
	}
	memcpy(out + o, ap, strlen(ap) + 1);
	return out;
}

static void check_diff(const char *a, const char *b)
{
	char *d = diff_unified("f.txt", a, strlen(a), b, strlen(b));
	assert_non_null(d);
	char *back = apply(a, d);
	if (strcmp(back, b))
		fail_msg("diff does not give the new text back:\n%s\n--- got:\n%s", d, back);
	free(back);
	free(d);
}

static void edit_replaces_the_one_occurrence_and_diffs_it(void **state)
{
	const char *src = "int a;\nint b;\nint c;\n";
	char *out = NULL, why[512];
	size_t len = 0;
	int n = 0;
	assert_int_equal(edit_replace(src, strlen(src), "int b;", "long b;", 0, &out, &len, &n,
				      why, sizeof(why)), 0);
	assert_string_equal(out, "int a;\nlong b;\nint c;\n");
	assert_int_equal(n, 1);
	char *d = diff_unified("src/x.c", src, strlen(src), out, len);
	assert_string_equal(d, "--- a/src/x.c\n+++ b/src/x.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n"
			       "+long b;\n int c;\n");
	free(d);
	free(out);
}

static void edit_fails_clearly_on_a_missing_or_ambiguous_string(void **state)
{
	const char *src = "x = 1;\ny = 1;\nx = 1;\n";
	char *out = NULL, why[512];
	size_t len;
	int n = 0;
	assert_int_equal(edit_replace(src, strlen(src), "z = 1;", "z = 2;", 0, &out, &len, &n,
				      why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not found"));
	assert_int_equal(edit_replace(src, strlen(src), "x = 1;", "x = 2;", 0, &out, &len, &n,
				      why, sizeof(why)), -1);
	assert_non_null(strstr(why, "found 2 times"));
	assert_non_null(strstr(why, "line 1"));
	assert_non_null(strstr(why, "replaceAll"));
	assert_null(out);
	assert_int_equal(edit_replace(src, strlen(src), "x = 1;", "x = 2;", 1, &out, &len, &n,
				      why, sizeof(why)), 0);
	assert_string_equal(out, "x = 2;\ny = 1;\nx = 2;\n");
	assert_int_equal(n, 2);
	free(out);
	out = NULL;
	assert_int_equal(edit_replace(src, strlen(src), "", "q", 0, &out, &len, &n, why,
				      sizeof(why)), -1);
	assert_non_null(strstr(why, "empty"));
	assert_int_equal(edit_replace(src, strlen(src), "y = 1;", "y = 1;", 0, &out, &len, &n,
				      why, sizeof(why)), -1);
	assert_non_null(strstr(why, "the same"));
}

static void edit_matches_lf_text_in_a_crlf_file(void **state)
{
	const char *src = "one\r\ntwo\r\nthree\r\n";
	char *out = NULL, why[512];
	size_t len;
	int n = 0;
	assert_int_equal(edit_replace(src, strlen(src), "one\ntwo", "one\n2", 0, &out, &len, &n,
				      why, sizeof(why)), 0);
	assert_string_equal(out, "one\r\n2\r\nthree\r\n");
	free(out);
}

static void diff_shows_new_files_missing_newlines_and_distant_hunks(void **state)
{
	char *d = diff_unified("n", "", 0, "a\nb\n", 4);
	assert_string_equal(d, "--- a/n\n+++ b/n\n@@ -0,0 +1,2 @@\n+a\n+b\n");
	free(d);
	d = diff_unified("n", "a\n", 2, "a\nb", 3);
	assert_string_equal(d, "--- a/n\n+++ b/n\n@@ -1,1 +1,2 @@\n a\n+b\n\\ No newline at end "
			       "of file\n");
	free(d);
	d = diff_unified("n", "same\n", 5, "same\n", 5);
	assert_string_equal(d, "");
	free(d);
	char a[4096] = "", b[4096] = "";
	for (int i = 0; i < 40; i++) {
		char l[32];
		snprintf(l, sizeof(l), "line %d\n", i);
		strcat(a, l);
		if (i == 3 || i == 30)
			snprintf(l, sizeof(l), "LINE %d\n", i);
		strcat(b, l);
	}
	d = diff_unified("n", a, strlen(a), b, strlen(b));
	int hunks = 0;
	for (const char *p = d; (p = strstr(p, "\n@@ ")); p++)
		hunks++;
	assert_int_equal(hunks, 2); /* far apart: two hunks with their own context */
	free(d);
	check_diff(a, b);
	check_diff("a\n", "a\nb");
	check_diff("a\nb", "a\n");
	check_diff("", "x\n");
	check_diff("x\n", "");
}

static void diff_applied_gives_the_new_text_for_random_edits(void **state)
{
	srand(7);
	for (int round = 0; round < 300; round++) {
		char a[2048] = "", b[2048] = "";
		int na = rand() % 30, nb = 0;
		for (int i = 0; i < na; i++) {
			char l[16];
			snprintf(l, sizeof(l), "%c\n", 'a' + rand() % 5);
			strcat(a, l);
			int r = rand() % 6;
			if (r == 0)
				continue; /* deleted */
			if (r == 1) {
				snprintf(l, sizeof(l), "%c\n", 'v' + rand() % 5);
				strcat(b, l), nb++; /* inserted */
			}
			snprintf(l, sizeof(l), "%c\n", r == 2 ? 'z' : a[strlen(a) - 2]);
			strcat(b, l), nb++;
		}
		if (rand() % 4 == 0 && strlen(b)) /* no newline at the end */
			b[strlen(b) - 1] = 0;
		check_diff(a, b);
	}
}

/* ---- output capping and text ---------------------------------------------------------- */

static void output_over_the_cap_keeps_head_and_tail_with_a_note(void **state)
{
	struct outcap c;
	assert_int_equal(outcap_init(&c, 3000), 0);
	char line[32];
	for (int i = 1; i <= 10000; i++) {
		int n = snprintf(line, sizeof(line), "%d\n", i);
		outcap_add(&c, line, (size_t)n);
	}
	assert_true(outcap_truncated(&c));
	char *t = outcap_text(&c);
	assert_true(strlen(t) < 3300);
	assert_memory_equal(t, "1\n2\n3\n", 6);
	assert_non_null(strstr(t, "9999\n10000\n"));
	assert_non_null(strstr(t, "bytes of output cut"));
	assert_int_equal(t[strlen(t) - 1], '\n');
	free(t);
	t = outcap_tail(&c, 11);
	assert_string_equal(t, "9999\n10000\n");
	free(t);
	outcap_free(&c);
	assert_int_equal(outcap_init(&c, 3000), 0);
	outcap_add(&c, "short\n", 6);
	assert_false(outcap_truncated(&c));
	t = outcap_text(&c);
	assert_string_equal(t, "short\n");
	free(t);
	outcap_free(&c);
}

static void output_cut_inside_utf8_stays_valid(void **state)
{
	struct outcap c;
	assert_int_equal(outcap_init(&c, 1000), 0);
	for (int i = 0; i < 5000; i++)
		outcap_add(&c, "\xc3\xa9", 2); /* é, so any odd cut is mid-sequence */
	char *t = outcap_text(&c);
	size_t n = strlen(t);
	char *clean = text_utf8_clean(t, n, NULL);
	assert_string_equal(clean, t); /* nothing invalid to replace */
	assert_null(strstr(t, "\xef\xbf\xbd"));
	free(clean);
	free(t);
	outcap_free(&c);
	char *bad = text_utf8_clean("a\xff" "b\0c", 5, &n);
	assert_string_equal(bad, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c");
	free(bad);
}

static void binary_files_are_recognised_with_a_reason(void **state)
{
	char why[128];
	assert_true(text_is_binary("x.png", (const unsigned char *)"abc", 3, why, sizeof(why)));
	assert_non_null(strstr(why, ".png"));
	assert_true(text_is_binary("x", (const unsigned char *)"ab\0c", 4, why, sizeof(why)));
	assert_non_null(strstr(why, "NUL"));
	assert_true(text_is_binary("x", (const unsigned char *)"\x01\x02\x03\x04a", 5, why,
				   sizeof(why)));
	assert_false(text_is_binary("x.c", (const unsigned char *)"int main;\n\t\r", 12, why,
				    sizeof(why)));
}

/* ---- glob ------------------------------------------------------------------------------- */

static int gm(const char *pattern, const char *path)
{
	struct glob g;
	char why[128];
	assert_int_equal(glob_compile(&g, pattern, why, sizeof(why)), 0);
	int r = glob_match(&g, path);
	glob_free(&g);
	return r;
}

static void glob_matches_like_ripgrep(void **state)
{
	assert_true(gm("*.c", "a.c"));
	assert_true(gm("*.c", "src/deep/a.c")); /* no slash: a name at any depth */
	assert_false(gm("*.c", "a.h"));
	assert_true(gm("src/*.c", "src/a.c"));
	assert_false(gm("src/*.c", "src/x/a.c")); /* '*' stays within a name */
	assert_false(gm("src/*.c", "lib/src/a.c")); /* a slash anchors */
	assert_true(gm("src/**/*.c", "src/a.c"));
	assert_true(gm("src/**/*.c", "src/x/y/a.c"));
	assert_true(gm("**/test_*.py", "test_a.py"));
	assert_true(gm("src/**", "src/x/y"));
	assert_true(gm("*.{ts,tsx}", "web/app.tsx"));
	assert_true(gm("{src,lib}/*.{c,h}", "lib/a.h"));
	assert_false(gm("{src,lib}/*.{c,h}", "doc/a.h"));
	assert_true(gm("file?.txt", "file1.txt"));
	assert_false(gm("file?.txt", "file10.txt"));
	assert_true(gm("[a-c]x", "bx"));
	assert_false(gm("[!a-c]x", "bx"));
	assert_true(gm("./src/*.c", "src/a.c"));
	assert_true(gm("/top.c", "top.c"));
	assert_false(gm("/top.c", "sub/top.c")); /* a leading slash anchors a name */
	assert_true(gm("a[b", "a[b")); /* an unclosed class is a literal */
	int64_t t0 = now_ms();
	assert_false(gm("*a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	assert_true(now_ms() - t0 < 2000); /* a step budget, not exponential time */
}

/* ---- the tree walks ------------------------------------------------------------------- */

static void touch_at(const char *rel, time_t t)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", tree, rel);
	struct timespec ts[2] = {{t, 0}, {t, 0}};
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static struct search search_in(const char *sub, int limit, char *dir_buf)
{
	size_t n = strlen(tree);
	memcpy(dir_buf, tree, n + 1);
	if (sub && n + strlen(sub) + 2 < PATH_MAX) {
		dir_buf[n] = '/';
		strcpy(dir_buf + n + 1, sub);
	}
	static char *const ignore[] = {".git", "node_modules", NULL};
	return (struct search){.root = tree, .dir = dir_buf, .ignore = ignore, .limit = limit};
}

static void walks_skip_ignored_folders_and_links_out(void **state)
{
	char dir[PATH_MAX], why[256], link[PATH_MAX + 16];
	put("src/main.c", "int main(void) { return 42; }\n");
	put("src/util/str.c", "/* 42 */\n");
	put("README.md", "read me\n");
	put(".git/HEAD", "ref 42\n");
	put("node_modules/x/index.js", "42\n");
	snprintf(link, sizeof(link), "%s/src/passwd", tree);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	struct search s = search_in(NULL, 100, dir);
	struct search_stats st;
	char *out = search_list(&s, &st, why, sizeof(why));
	char want[PATH_MAX + 128];
	snprintf(want, sizeof(want), "%s/\n  src/\n    util/\n      str.c\n    main.c\n  README.md\n",
		 tree);
	assert_string_equal(out, want);
	assert_int_equal(st.count, 3);
	free(out);
	regex_t re;
	assert_int_equal(search_regex(&re, "\\d\\d", why, sizeof(why)), 0);
	out = search_grep(&s, &re, NULL, &st, why, sizeof(why));
	assert_non_null(strstr(out, "src/main.c:1: int main(void) { return 42; }"));
	assert_non_null(strstr(out, "src/util/str.c:1: /* 42 */"));
	assert_null(strstr(out, ".git"));
	assert_null(strstr(out, "node_modules"));
	assert_null(strstr(out, "root:")); /* the link to /etc/passwd was not read */
	assert_int_equal(st.count, 2);
	free(out);
	struct glob inc;
	assert_int_equal(glob_compile(&inc, "util/*.c", why, sizeof(why)), 0);
	struct search sub = search_in("src", 100, dir);
	out = search_grep(&sub, &re, &inc, &st, why, sizeof(why));
	assert_string_equal(out, "Found 1 match\nsrc/util/str.c:1: /* 42 */\n");
	free(out);
	glob_free(&inc);
	regfree(&re);
}

static void sh(const char *fmt, const char *arg)
{
	char cmd[PATH_MAX * 2];
	snprintf(cmd, sizeof(cmd), fmt, arg);
	assert_int_equal(system(cmd), 0);
}

/* grep for "42" in s: its output, with what git ignores skipped when gi is set. */
static char *grep42(struct search *s, int gi, struct search_stats *st)
{
	char why[256];
	regex_t re;
	assert_int_equal(search_regex(&re, "42", why, sizeof(why)), 0);
	if (gi)
		search_gitignore(s);
	char *out = search_grep(s, &re, NULL, st, why, sizeof(why));
	search_done(s);
	regfree(&re);
	assert_non_null(out);
	return out;
}

static void walks_skip_what_git_ignores_in_a_repository(void **state)
{
	char dir[PATH_MAX], why[256];
	extern char **environ;
	assert_int_equal(git_init(environ), 0);
	const char *files[] = {"a.c", "b.log", "out/x.c", "src/z.c", "src/y.log", "src/out/w.c",
			       "sub/keep.log", "tracked.log", "node_modules/m.js"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		put(files[i], "42\n");
	/* outside a repository git says nothing, and only the ignore names apply */
	struct search s = search_in(NULL, 100, dir);
	search_gitignore(&s);
	assert_int_equal(s.ngitignored, 0);
	put(".gitignore", "*.log\nout/\n");
	put("sub/.gitignore", "!keep.log\n");
	sh("cd '%s' && git init -q && git add -f tracked.log", tree);
	struct search_stats st;
	char *out = grep42(&s, 1, &st);
	const char *kept[] = {"a.c:1", "src/z.c:1", "sub/keep.log:1", "tracked.log:1"};
	const char *skipped[] = {"b.log", "out/x.c", "src/y.log", "src/out/w.c", "node_modules"};
	for (size_t i = 0; i < 4; i++)
		if (!strstr(out, kept[i]))
			fail_msg("%s missing from:\n%s", kept[i], out);
	for (size_t i = 0; i < 5; i++)
		if (strstr(out, skipped[i]))
			fail_msg("%s (ignored) found in:\n%s", skipped[i], out);
	assert_int_equal(st.count, 4);
	free(out);
	/* list and glob skip the same */
	search_gitignore(&s);
	out = search_list(&s, &st, why, sizeof(why));
	assert_null(strstr(out, "out/"));
	assert_null(strstr(out, "b.log"));
	assert_non_null(strstr(out, "keep.log"));
	free(out);
	struct glob g;
	assert_int_equal(glob_compile(&g, "*.log", why, sizeof(why)), 0);
	out = search_glob(&s, &g, &st, why, sizeof(why));
	search_done(&s);
	glob_free(&g);
	assert_int_equal(st.count, 2);
	assert_non_null(strstr(out, "sub/keep.log"));
	assert_non_null(strstr(out, "tracked.log"));
	free(out);
	/* without the option, only the names */
	out = grep42(&s, 0, &st);
	assert_non_null(strstr(out, "b.log:1"));
	assert_non_null(strstr(out, "src/out/w.c:1"));
	free(out);
	/* an ignored folder asked for by name is searched */
	struct search in_out = search_in("out", 100, dir);
	out = grep42(&in_out, 1, &st);
	assert_non_null(strstr(out, "out/x.c:1"));
	free(out);
}

/* The file at rel below the tree, read whole (malloc'd). */
static char *slurp(const char *rel)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", tree, rel);
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	char *buf = calloc(1, 4096);
	assert_true(fread(buf, 1, 4095, f) > 0);
	fclose(f);
	return buf;
}

static void pruning_drops_old_snapshots_and_keeps_what_newer_ones_need(void **state)
{
	char data[PATH_MAX + 8], wt[PATH_MAX + 8], why[600];
	char t1[GIT_HASH_MAX], t2[GIT_HASH_MAX], t4[GIT_HASH_MAX], t5[GIT_HASH_MAX];
	extern char **environ;
	struct git_repo r;
	snprintf(data, sizeof(data), "%s/data", tree);
	snprintf(wt, sizeof(wt), "%s/wt", tree);
	put("wt/a.txt", "one\n");
	put("wt/b.txt", "bee\n");
	sh("cd '%s/wt' && git init -q", tree);
	assert_int_equal(snap_init(data, environ), 0);
	assert_int_equal(snap_repo(wt, &r), 0);
	assert_int_equal(snap_tree(&r, t1, why, sizeof(why)), 0);
	put("wt/a.txt", "two\n");
	assert_int_equal(snap_tree(&r, t2, why, sizeof(why)), 0);
	/* ten days pass: every object so far is old, b's blob and a's second one too */
	sh("find '%s' -type f -path '*/objects/*' -exec touch -d '10 days ago' {} +", data);
	put("wt/c.txt", "new\n");
	assert_int_equal(snap_tree(&r, t4, why, sizeof(why)), 0);
	put("wt/c.txt", "newer\n");
	assert_int_equal(snap_tree(&r, t5, why, sizeof(why)), 0);
	if (snap_prune(7, why, sizeof(why)))
		fail_msg("prune: %s", why);
	/* the old snapshots are gone; the recent ones are whole, old blobs they use kept */
	assert_int_not_equal(snap_has(&r, t1), 0);
	assert_int_not_equal(snap_has(&r, t2), 0);
	assert_int_equal(snap_has(&r, t5), 0);
	assert_int_equal(snap_has(&r, t4), 0);
	cJSON *paths = cJSON_Parse("[\"a.txt\",\"b.txt\",\"c.txt\"]");
	put("wt/a.txt", "changed\n");
	put("wt/b.txt", "changed\n");
	if (snap_checkout(&r, t4, paths, why, sizeof(why)))
		fail_msg("checkout of the recent snapshot: %s", why);
	const char *want[][2] = {{"wt/a.txt", "two\n"}, {"wt/b.txt", "bee\n"}, {"wt/c.txt", "new\n"}};
	for (int i = 0; i < 3; i++) {
		char *got = slurp(want[i][0]);
		assert_string_equal(got, want[i][1]);
		free(got);
	}
	cJSON_Delete(paths);
	/* a second pass finds nothing more to drop */
	assert_int_equal(snap_prune(7, why, sizeof(why)), 0);
	assert_int_equal(snap_has(&r, t4), 0);
	snap_shutdown();
}

static void glob_lists_newest_first_and_grep_caps_its_matches(void **state)
{
	char dir[PATH_MAX], why[256];
	put("a.txt", "x\n");
	put("b/b.txt", "x\n");
	put("c.txt", "x\n");
	touch_at("a.txt", 1000);
	touch_at("b/b.txt", 3000);
	touch_at("c.txt", 2000);
	struct search s = search_in(NULL, 100, dir);
	struct search_stats st;
	struct glob g;
	assert_int_equal(glob_compile(&g, "*.txt", why, sizeof(why)), 0);
	char *out = search_glob(&s, &g, &st, why, sizeof(why));
	assert_string_equal(out, "b/b.txt\nc.txt\na.txt\n");
	free(out);
	s.limit = 2;
	out = search_glob(&s, &g, &st, why, sizeof(why));
	assert_non_null(strstr(out, "b/b.txt\nc.txt\n\n(Showing the 2 most recently modified of 3"));
	assert_true(st.truncated);
	free(out);
	glob_free(&g);
	char big[8192] = "";
	for (int i = 0; i < 500; i++)
		strcat(big, "hit\n");
	put("many.txt", big);
	regex_t re;
	assert_int_equal(search_regex(&re, "^hit$", why, sizeof(why)), 0);
	s.limit = 100;
	out = search_grep(&s, &re, NULL, &st, why, sizeof(why));
	assert_int_equal(st.count, 500);
	assert_true(st.truncated);
	assert_non_null(strstr(out, "many.txt:100: hit\n\n(Showing 100 of 500 matches"));
	assert_null(strstr(out, "many.txt:101:"));
	free(out);
	regfree(&re);
	assert_int_equal(search_regex(&re, "(unclosed", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "(unclosed"));
}

/* ---- bash ------------------------------------------------------------------------------- */

static char *const test_env[] = {"PATH=/usr/bin:/bin", "VISIBLE=yes", NULL};

static struct bash_spec spec_of(const char *cmd, int64_t timeout_ms)
{
	return (struct bash_spec){.command = cmd, .cwd = tree, .envp = test_env,
				  .timeout_ms = timeout_ms, .grace_ms = 500,
				  .max_output = 30 * 1024, .cancel_fd = -1};
}

static void bash_merges_output_and_reports_status_in_its_directory(void **state)
{
	struct bash_result r;
	struct bash_spec s = spec_of("echo out; echo err >&2; pwd; echo ${VISIBLE}-${SECRET-unset};"
				     " exit 3", 10000);
	assert_int_equal(bash_exec(&s, &r), 0);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "out\nerr\n%s\nyes-unset\n", tree);
	assert_string_equal(r.output, want);
	assert_int_equal(r.exit_code, 3);
	assert_false(r.timed_out);
	free(r.output);
}

static void bash_restores_sigpipe_for_the_command(void **state)
{
	struct bash_result r;
	struct bash_spec s = spec_of("yes | head -n 2", 5000); /* yes must die of SIGPIPE */
	int64_t t0 = now_ms();
	assert_int_equal(bash_exec(&s, &r), 0);
	assert_string_equal(r.output, "y\ny\n");
	assert_false(r.timed_out);
	assert_true(now_ms() - t0 < 4000);
	free(r.output);
}

static void bash_timeout_kills_the_whole_group(void **state)
{
	struct bash_result r;
	struct bash_spec s = spec_of("sh -c 'sleep 97 & sleep 98' & sleep 99; echo never", 300);
	int64_t t0 = now_ms();
	assert_int_equal(bash_exec(&s, &r), 0);
	assert_true(r.timed_out);
	assert_true(now_ms() - t0 < 5000);
	assert_null(strstr(r.output, "never"));
	assert_false(bash_group_alive(r.pgid)); /* not one sleep is left */
	free(r.output);
}

/* A process that ignores SIGTERM still ends: SIGKILL after the grace. */
static void bash_timeout_kills_what_ignores_sigterm(void **state)
{
	struct bash_result r;
	struct bash_spec s = spec_of("trap '' TERM; sh -c 'trap \"\" TERM; sleep 96' & sleep 95",
				     200);
	assert_int_equal(bash_exec(&s, &r), 0);
	assert_true(r.timed_out);
	assert_false(bash_group_alive(r.pgid));
	free(r.output);
}

struct canceller {
	atomic_int *flag;
	int fd;
};

static void *cancel_soon(void *arg)
{
	struct canceller *c = arg;
	struct timespec t = {0, 300 * 1000000L};
	nanosleep(&t, NULL);
	atomic_store(c->flag, 1);
	eventfd_write(c->fd, 1);
	return NULL;
}

static void bash_cancel_kills_the_whole_group_at_once(void **state)
{
	atomic_int flag = 0;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct canceller c = {&flag, fd};
	struct bash_result r;
	struct bash_spec s = spec_of("sh -c 'sleep 100 & sleep 100'", 60000);
	s.cancelled = &flag;
	s.cancel_fd = fd;
	pthread_t th;
	pthread_create(&th, NULL, cancel_soon, &c);
	int64_t t0 = now_ms();
	assert_int_equal(bash_exec(&s, &r), 0);
	pthread_join(th, NULL);
	close(fd);
	assert_true(r.cancelled);
	assert_true(now_ms() - t0 < 5000);
	assert_false(bash_group_alive(r.pgid));
	free(r.output);
}

static void bash_output_over_the_cap_is_cut_with_a_note(void **state)
{
	struct bash_result r;
	struct bash_spec s = spec_of("seq 1 200000", 20000);
	assert_int_equal(bash_exec(&s, &r), 0);
	assert_true(r.truncated);
	assert_int_equal(r.total, 1288895); /* every byte counted, 30 KB kept */
	assert_true(strlen(r.output) < 31 * 1024);
	assert_memory_equal(r.output, "1\n2\n3\n", 6);
	assert_non_null(strstr(r.output, "199999\n200000\n"));
	assert_non_null(strstr(r.output, "bytes of output cut"));
	free(r.output);
}

static void bash_does_not_wait_for_background_processes(void **state)
{
	struct bash_result r;
	struct bash_spec s = spec_of("sleep 30 & echo started", 20000);
	int64_t t0 = now_ms();
	assert_int_equal(bash_exec(&s, &r), 0);
	assert_true(now_ms() - t0 < 3000);
	assert_string_equal(r.output, "started\n");
	kill(-r.pgid, SIGKILL); /* the test's own cleanup */
	free(r.output);
}

struct seen {
	int calls;
	char last[256];
};

static void on_progress(void *arg, const struct outcap *out)
{
	struct seen *s = arg;
	char *t = outcap_tail(out, 200);
	s->calls++;
	snprintf(s->last, sizeof(s->last), "%s", t);
	free(t);
}

static void bash_progress_reports_output_while_it_runs(void **state)
{
	struct seen seen = {0};
	struct bash_result r;
	struct bash_spec s = spec_of("echo one; sleep 0.4; echo two; sleep 0.4; echo three", 10000);
	s.progress = on_progress;
	s.arg = &seen;
	s.progress_ms = 100;
	assert_int_equal(bash_exec(&s, &r), 0);
	assert_true(seen.calls >= 2);
	assert_non_null(strstr(seen.last, "two"));
	free(r.output);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the gateway runs */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(normalize_collapses_dots_and_slashes),
		cmocka_unit_test_setup_teardown(paths_inside_the_root_resolve, make_tree, drop_tree),
		cmocka_unit_test_setup_teardown(dotdot_and_absolute_paths_out_of_the_root_are_refused,
						make_tree, drop_tree),
		cmocka_unit_test_setup_teardown(symlinks_out_of_the_root_are_refused, make_tree,
						drop_tree),
		cmocka_unit_test(edit_replaces_the_one_occurrence_and_diffs_it),
		cmocka_unit_test(edit_fails_clearly_on_a_missing_or_ambiguous_string),
		cmocka_unit_test(edit_matches_lf_text_in_a_crlf_file),
		cmocka_unit_test(diff_shows_new_files_missing_newlines_and_distant_hunks),
		cmocka_unit_test(diff_applied_gives_the_new_text_for_random_edits),
		cmocka_unit_test(output_over_the_cap_keeps_head_and_tail_with_a_note),
		cmocka_unit_test(output_cut_inside_utf8_stays_valid),
		cmocka_unit_test(binary_files_are_recognised_with_a_reason),
		cmocka_unit_test(glob_matches_like_ripgrep),
		cmocka_unit_test_setup_teardown(walks_skip_ignored_folders_and_links_out, make_tree,
						drop_tree),
		cmocka_unit_test_setup_teardown(walks_skip_what_git_ignores_in_a_repository, make_tree,
						drop_tree),
		cmocka_unit_test_setup_teardown(
			pruning_drops_old_snapshots_and_keeps_what_newer_ones_need, make_tree,
			drop_tree),
		cmocka_unit_test_setup_teardown(glob_lists_newest_first_and_grep_caps_its_matches,
						make_tree, drop_tree),
		cmocka_unit_test_setup_teardown(bash_merges_output_and_reports_status_in_its_directory,
						make_tree, drop_tree),
		cmocka_unit_test_setup_teardown(bash_restores_sigpipe_for_the_command, make_tree,
						drop_tree),
		cmocka_unit_test_setup_teardown(bash_timeout_kills_the_whole_group, make_tree,
						drop_tree),
		cmocka_unit_test_setup_teardown(bash_timeout_kills_what_ignores_sigterm, make_tree,
						drop_tree),
		cmocka_unit_test_setup_teardown(bash_cancel_kills_the_whole_group_at_once, make_tree,
						drop_tree),
		cmocka_unit_test_setup_teardown(bash_output_over_the_cap_is_cut_with_a_note,
						make_tree, drop_tree),
		cmocka_unit_test_setup_teardown(bash_does_not_wait_for_background_processes,
						make_tree, drop_tree),
		cmocka_unit_test_setup_teardown(bash_progress_reports_output_while_it_runs, make_tree,
						drop_tree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
