/*
 * unihan_text.h: the text rules that the table generator (unihan_gen.c, run
 * at build time) and the name normaliser (name_norm.c) must agree on, so a
 * reading in Unihan and a name typed at a desk turn into the same letters.
 *
 * Header-only and free of project dependencies: the generator is a host tool
 * built before anything else and links nothing of ours.
 */
#ifndef ONECARD_UNIHAN_TEXT_H
#define ONECARD_UNIHAN_TEXT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decode one UTF-8 sequence at s (n bytes left, n > 0). Returns its length
 * and the code point in *cp, or -1 for a malformed sequence: a stray or
 * missing continuation byte, an overlong form, a surrogate (U+D800..U+DFFF)
 * or a value past U+10FFFF.
 */
static inline int
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c, min;
	int len, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
		min = 0x10000;
	} else
		return -1;
	if ((size_t)len > n)
		return -1;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*cp = c;
	return len;
}

/*
 * The pinyin letter a code point spells: 'a'..'z' for ASCII letters of
 * either case and for the tone-marked vowels of Hanyu Pinyin (ā á ǎ à, ê ế
 * ề, ḿ, ń ň ǹ, the Latin-1 accented vowels), 'v' for ü in any tone (the
 * usual keyboard spelling: "lv" for lü); 0 for anything else. Unihan's
 * kMandarin readings use exactly these; the generator fails the build if a
 * new version brings a letter this does not know.
 */
static inline int
pinyin_letter(uint32_t cp)
{
	/* U+00C0..U+00FF: À Á Â are a, È É Ê e, Ì Í Î i, Ò Ó Ô o, Ù Ú Û u, Ü v.
	 */
	static const char latin1[] = "aaa.....eee.iii...ooo....uuuv..."
				     "aaa.....eee.iii...ooo....uuuv...";
	/* U+01CD..U+01DC: Ǎ ǎ Ǐ ǐ Ǒ ǒ Ǔ ǔ, then ü with its four tones. */
	static const char caron[] = "aaiioouuvvvvvvvv";

	if (cp >= 'a' && cp <= 'z')
		return (int)cp;
	if (cp >= 'A' && cp <= 'Z')
		return (int)(cp - 'A' + 'a');
	if (cp >= 0xc0 && cp <= 0xff)
		return latin1[cp - 0xc0] == '.' ? 0 : latin1[cp - 0xc0];
	if (cp >= 0x1cd && cp <= 0x1dc)
		return caron[cp - 0x1cd];
	switch (cp & ~1U) { /* upper and lower case side by side */
	case 0x100:         /* Ā ā */
		return 'a';
	case 0x112:  /* Ē ē */
	case 0x11a:  /* Ě ě */
	case 0x1ebe: /* Ế ế */
	case 0x1ec0: /* Ề ề */
		return 'e';
	case 0x12a: /* Ī ī */
		return 'i';
	case 0x1e3e: /* Ḿ ḿ */
		return 'm';
	case 0x1f8: /* Ǹ ǹ */
		return 'n';
	case 0x14c: /* Ō ō */
		return 'o';
	case 0x16a: /* Ū ū */
		return 'u';
	}
	switch (cp) { /* here the capital is odd */
	case 0x143:   /* Ń ń */
	case 0x144:
	case 0x147: /* Ň ň */
	case 0x148:
		return 'n';
	}
	return 0;
}

#endif
