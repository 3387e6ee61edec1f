/*
 * fuzz_main.c: replays a fuzz corpus without libFuzzer.
 *
 * Builds where libFuzzer is not available (GCC, or ONECARD_FUZZ off) still
 * run every harness over its committed corpus, so each seed and each crash
 * once found stays a regression test. Usage: fuzz_X_corpus DIR...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole file into a fresh buffer; 0 or -1. */
static int
fuzz_read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f;
	struct stat sb;
	uint8_t *buf;

	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	if (fstat(fileno(f), &sb) == -1 || sb.st_size < 0) {
		fclose(f);
		return -1;
	}
	/* One spare byte so an empty file still gets a buffer to point at. */
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		fclose(f);
		return -1;
	}
	if (fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	*out = buf;
	*len = (size_t)sb.st_size;
	return 0;
}

/* Run the harness over every regular file in dir; returns how many. */
static int
fuzz_run_dir(const char *dir)
{
	DIR *d;
	struct dirent *de;
	char path[4096];
	struct stat sb;
	uint8_t *buf;
	size_t len;
	int n = 0;

	if ((d = opendir(dir)) == NULL) {
		perror(dir);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &sb) == -1 || !S_ISREG(sb.st_mode))
			continue;
		if (fuzz_read_file(path, &buf, &len) == -1) {
			perror(path);
			closedir(d);
			return -1;
		}
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

int
main(int argc, char **argv)
{
	int i, n, total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if ((n = fuzz_run_dir(argv[i])) == -1)
			return 1;
		total += n;
	}
	printf("%d inputs ran clean\n", total);
	/* An empty corpus proves nothing: fail rather than pass silently. */
	return total > 0 ? 0 : 1;
}
