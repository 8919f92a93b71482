/* A prompt's attachments before they reach the engine: base64 and data: URLs (every
 * length, both encodings, each malformation refused with its reason), what a MIME type
 * and magic bytes say, UTF-8 text, and local files read from inside a directory only —
 * through "..", symbolic links, absolute paths, file:// URLs, FIFOs and devices, and
 * sizes at the limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "localfile.h"
#include "media.h"

static void base64_round_trips_every_length_and_refuses_what_is_not_base64(void **state)
{
	unsigned char buf[300];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(buf); n++) {
		size_t en, dn;
		char *enc = media_b64_encode(buf, n, &en);
		assert_int_equal(en, media_b64_len(n));
		assert_int_equal(strlen(enc), en);
		assert_int_equal(media_b64_decoded_len(enc, en), n);
		char why[160];
		unsigned char *dec = media_b64_decode(enc, en, &dn, why, sizeof(why));
		assert_non_null(dec);
		assert_int_equal(dn, n);
		assert_memory_equal(dec, buf, n);
		free(dec);
		/* without its padding it decodes the same */
		size_t bare = en;
		while (bare && enc[bare - 1] == '=')
			bare--;
		dec = media_b64_decode(enc, bare, &dn, why, sizeof(why));
		assert_non_null(dec);
		assert_int_equal(dn, n);
		free(dec);
		free(enc);
	}
	static const char *const bad[] = {"A", "AAAAA", "A===", "AA=A", "QUJD=A==", "QU JD",
					  "QU\nJD", "QUJ-", "QUJ_", "=AAA"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char why[160] = "";
		size_t dn;
		assert_null(media_b64_decode(bad[i], strlen(bad[i]), &dn, why, sizeof(why)));
		assert_non_null(strstr(why, "base64"));
	}
}

static void data_urls_decode_both_encodings_and_refuse_malformed_ones(void **state)
{
	struct media_data d;
	char why[200];
	assert_int_equal(media_data_parse("data:text/plain;base64,aMOpbGxv", 0, &d, why, sizeof(why)), 0);
	assert_string_equal(d.mime, "text/plain");
	assert_int_equal(d.len, 6);
	assert_memory_equal(d.bytes, "h\xc3\xa9llo", 6);
	media_data_free(&d);
	assert_int_equal(media_data_parse("DATA:Text/Plain;charset=UTF-8,caf%C3%A9%20%00x", 0, &d, why,
					  sizeof(why)), 0);
	assert_string_equal(d.mime, "text/plain");
	assert_int_equal(d.len, 8); /* a NUL is data */
	assert_memory_equal(d.bytes, "caf\xc3\xa9 \0x", 8);
	media_data_free(&d);
	assert_int_equal(media_data_parse("data:,", 0, &d, why, sizeof(why)), 0);
	assert_string_equal(d.mime, "");
	assert_int_equal(d.len, 0);
	media_data_free(&d);
	/* base64 that a URL encoder %-escaped */
	assert_int_equal(media_data_parse("data:image/png;base64,iVBORw0KGgo%3D", 0, &d, why, sizeof(why)), 0);
	assert_int_equal(d.len, 8);
	media_data_free(&d);

	static const struct {
		const char *url, *why;
	} bad[] = {
		{"http://x/y", "not a data: URL"},
		{"data:text/plain", "','"},
		{"data:text/plain;base64,@@", "base64"},
		{"data:text/plain;base64,QUJD=A==", "base64"},
		{"data:text/plain,%G0", "'%'"},
		{"data:text/plain,%4", "'%'"},
		{"data:text/plain,%", "'%'"},
		{"data:;base64,AAAAAAAA", "over 5"},
		{"data:,123456", "over 5"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		assert_int_equal(media_data_parse(bad[i].url, 5, &d, why, sizeof(why)), -1);
		assert_null(d.bytes);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].url, why, bad[i].why);
	}
	/* what the module writes, it splits without decoding */
	char *url = media_data_url("image/gif", "GIF89a", 6);
	const char *m, *b64;
	size_t ml;
	assert_int_equal(media_data_split(url, &m, &ml, &b64), 0);
	assert_int_equal(ml, 9);
	assert_memory_equal(m, "image/gif", 9);
	assert_string_equal(b64, "R0lGODlh");
	free(url);
	assert_int_equal(media_data_split("data:text/plain,abc", &m, &ml, &b64), -1);
	assert_int_equal(media_data_split("file:///x", &m, &ml, &b64), -1);
}

static void kinds_follow_the_mime_type_and_magic_bytes_name_images_and_pdfs(void **state)
{
	assert_int_equal(media_kind_of("image/png"), MEDIA_IMAGE);
	assert_int_equal(media_kind_of("IMAGE/JPEG; q=1"), MEDIA_IMAGE);
	assert_int_equal(media_kind_of("image/webp"), MEDIA_IMAGE);
	assert_int_equal(media_kind_of("image/bmp"), MEDIA_OTHER);
	assert_int_equal(media_kind_of("image/svg+xml"), MEDIA_TEXT);
	assert_int_equal(media_kind_of("application/pdf"), MEDIA_PDF);
	assert_int_equal(media_kind_of("text/x-c"), MEDIA_TEXT);
	assert_int_equal(media_kind_of("application/json"), MEDIA_TEXT);
	assert_int_equal(media_kind_of("application/vnd.api+json"), MEDIA_TEXT);
	assert_int_equal(media_kind_of("application/x-directory"), MEDIA_DIR);
	assert_int_equal(media_kind_of("audio/mpeg"), MEDIA_OTHER);
	assert_int_equal(media_kind_of("application/zip"), MEDIA_OTHER);
	assert_int_equal(media_kind_of(""), MEDIA_OTHER);
	assert_string_equal(media_sniff((const unsigned char *)"\x89PNG\r\n\x1a\nrest", 12), "image/png");
	assert_string_equal(media_sniff((const unsigned char *)"\xff\xd8\xff\xe0", 4), "image/jpeg");
	assert_string_equal(media_sniff((const unsigned char *)"GIF87a..", 8), "image/gif");
	assert_string_equal(media_sniff((const unsigned char *)"RIFF\0\0\0\0WEBPVP8 ", 16), "image/webp");
	assert_string_equal(media_sniff((const unsigned char *)"%PDF-1.7", 8), "application/pdf");
	assert_null(media_sniff((const unsigned char *)"\x89PN", 3));
	assert_null(media_sniff((const unsigned char *)"RIFF\0\0\0\0WAVE", 12));
	assert_null(media_sniff((const unsigned char *)"hello", 5));
}

static void utf8_text_refuses_nul_overlong_forms_and_surrogates(void **state)
{
	const unsigned char good[] = "plain, caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80";
	assert_true(media_utf8_text(good, sizeof(good) - 1));
	assert_true(media_utf8_text(good, 0));
	static const char *const bad[] = {"a\0b", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
					  "\xf4\x90\x80\x80", "\xff", "\xc3", "\xe2\x82", "\x80"};
	static const size_t len[] = {3, 2, 3, 3, 4, 1, 1, 2, 1};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(media_utf8_text((const unsigned char *)bad[i], len[i]));
}

/* ---- local files ---- */

struct tree {
	char root[256], dir[PATH_MAX], out[PATH_MAX];
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void tree_make(struct tree *t)
{
	char p[PATH_MAX + 64];
	snprintf(t->root, sizeof(t->root), "/tmp/agentgate-files-XXXXXX");
	assert_non_null(mkdtemp(t->root));
	snprintf(t->dir, sizeof(t->dir), "%s/ws", t->root);
	snprintf(t->out, sizeof(t->out), "%s/outside", t->root);
	assert_int_equal(mkdir(t->dir, 0700), 0);
	assert_int_equal(mkdir(t->out, 0700), 0);
	snprintf(p, sizeof(p), "%s/secret.txt", t->out);
	put(p, "secret\n");
	snprintf(p, sizeof(p), "%s/a.txt", t->dir);
	put(p, "one\ntwo\nthree\n");
	snprintf(p, sizeof(p), "%s/sub", t->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/sub/b c.txt", t->dir);
	put(p, "spaced\n");
	snprintf(p, sizeof(p), "%s/sub/up.txt", t->dir);
	assert_int_equal(symlink("../a.txt", p), 0);
	snprintf(p, sizeof(p), "%s/out.txt", t->dir);
	char target[PATH_MAX + 32];
	snprintf(target, sizeof(target), "%s/secret.txt", t->out);
	assert_int_equal(symlink(target, p), 0);
	snprintf(p, sizeof(p), "%s/rel-out", t->dir);
	assert_int_equal(symlink("../outside", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", t->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/dev", t->dir);
	assert_int_equal(symlink("/dev/zero", p), 0);
}

static void tree_free(struct tree *t)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	assert_int_equal(system(cmd), 0);
}

static void reads_ok(const struct tree *t, const char *ref, const char *want, const char *name)
{
	struct localfile f;
	char why[600] = "";
	if (localfile_read(t->dir, ref, 1 << 20, &f, why, sizeof(why)))
		fail_msg("%s: %s", ref, why);
	assert_string_equal((const char *)f.bytes, want);
	assert_int_equal(f.len, strlen(want));
	assert_string_equal(f.name, name);
	localfile_free(&f);
}

static void refused(const struct tree *t, const char *ref, size_t max, const char *word)
{
	struct localfile f;
	char why[600] = "";
	if (!localfile_read(t->dir, ref, max, &f, why, sizeof(why)))
		fail_msg("%s was read: %.40s", ref, f.bytes);
	assert_null(f.bytes);
	if (!strstr(why, word))
		fail_msg("%s: \"%s\" lacks \"%s\"", ref, why, word);
	assert_null(strstr(why, "secret\n"));
}

static void local_files_are_read_from_inside_the_directory_only(void **state)
{
	struct tree t;
	tree_make(&t);
	char ref[PATH_MAX * 2 + 64];
	reads_ok(&t, "a.txt", "one\ntwo\nthree\n", "a.txt");
	reads_ok(&t, "./sub/../a.txt", "one\ntwo\nthree\n", "a.txt");
	reads_ok(&t, "sub/b c.txt", "spaced\n", "b c.txt");
	reads_ok(&t, "sub/up.txt", "one\ntwo\nthree\n", "up.txt"); /* a link that stays inside */
	snprintf(ref, sizeof(ref), "%s/a.txt", t.dir);
	reads_ok(&t, ref, "one\ntwo\nthree\n", "a.txt");
	snprintf(ref, sizeof(ref), "file://%s/sub/b%%20c.txt", t.dir);
	reads_ok(&t, ref, "spaced\n", "b c.txt");
	snprintf(ref, sizeof(ref), "file://localhost%s/a.txt", t.dir);
	reads_ok(&t, ref, "one\ntwo\nthree\n", "a.txt");
	reads_ok(&t, "sub", "b c.txt\nup.txt\n", "sub"); /* a directory: its listing */
	struct localfile f;
	char why[600];
	assert_int_equal(localfile_read(t.dir, "sub", 1 << 20, &f, why, sizeof(why)), 0);
	assert_true(f.is_dir);
	localfile_free(&f);

	refused(&t, "../outside/secret.txt", 1 << 20, "outside the session's directory");
	refused(&t, "sub/../../outside/secret.txt", 1 << 20, "outside");
	snprintf(ref, sizeof(ref), "%s/secret.txt", t.out);
	refused(&t, ref, 1 << 20, "outside");
	snprintf(ref, sizeof(ref), "file://%s/../outside/secret.txt", t.dir);
	refused(&t, ref, 1 << 20, "outside");
	refused(&t, "/etc/passwd", 1 << 20, "outside");
	refused(&t, "out.txt", 1 << 20, "leads out");       /* an absolute link */
	refused(&t, "rel-out/secret.txt", 1 << 20, "leads out"); /* a relative link */
	refused(&t, "dev", 1 << 20, "leads out");
	refused(&t, "fifo", 1 << 20, "not a regular file");  /* and no hang */
	refused(&t, "missing.txt", 1 << 20, "No such file");
	refused(&t, "a.txt", 13, "limits.max_file_bytes");
	refused(&t, "file://host/etc/passwd", 1 << 20, "host");
	snprintf(ref, sizeof(ref), "file://%s/a.txt%%00.png", t.dir);
	refused(&t, ref, 1 << 20, "%00");
	snprintf(ref, sizeof(ref), "file://%s/a%%2", t.dir);
	refused(&t, ref, 1 << 20, "%-escape");
	refused(&t, "", 1 << 20, "empty");
	/* the limit is the file's size: exactly at it is fine */
	assert_int_equal(localfile_read(t.dir, "a.txt", 14, &f, why, sizeof(why)), 0);
	localfile_free(&f);
	/* a file:// URL's line range */
	snprintf(ref, sizeof(ref), "file://%s/a.txt?start=2&end=3", t.dir);
	assert_int_equal(localfile_read(t.dir, ref, 1 << 20, &f, why, sizeof(why)), 0);
	assert_int_equal(f.first_line, 2);
	assert_int_equal(f.last_line, 3);
	localfile_free(&f);
	tree_free(&t);
}

static void line_ranges_cut_whole_lines(void **state)
{
	static const struct {
		long first, last;
		const char *want;
	} cases[] = {
		{0, 0, "one\ntwo\nthree"}, {1, 1, "one\n"},   {2, 3, "two\nthree"},
		{2, 0, "two\nthree"},      {3, 9, "three"},   {4, 5, ""},
		{0, 2, "one\ntwo\n"},      {3, 2, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char buf[32];
		memcpy(buf, "one\ntwo\nthree", 14);
		size_t n = localfile_lines(buf, 13, cases[i].first, cases[i].last);
		assert_int_equal(n, strlen(cases[i].want));
		assert_memory_equal(buf, cases[i].want, n);
		assert_int_equal(buf[n], 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_round_trips_every_length_and_refuses_what_is_not_base64),
		cmocka_unit_test(data_urls_decode_both_encodings_and_refuse_malformed_ones),
		cmocka_unit_test(kinds_follow_the_mime_type_and_magic_bytes_name_images_and_pdfs),
		cmocka_unit_test(utf8_text_refuses_nul_overlong_forms_and_surrogates),
		cmocka_unit_test(local_files_are_read_from_inside_the_directory_only),
		cmocka_unit_test(line_ranges_cut_whole_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
