/* A conformance decoder over libpcll's C API.
 *
 * Usage: pcll_decode ARTIFACT.pcll OUTDIR
 * Writes OUTDIR/<index>.bin with each tensor reconstructed in its logical dtype (little-endian,
 * as `pcll conformance` expects from any decoder) and exits 0; on any error prints one line to
 * stderr and exits 1. Floats go through pcll_decode_f32/f16/bf16, other dtypes through
 * pcll_raw_bytes. This program owns every buffer; the library allocates nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcll.h"

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

static int fail(const char *what, int code) {
    fprintf(stderr, "error: %s: %s (code %d)\n", what, pcll_error_message(code), code);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ARTIFACT.pcll OUTDIR\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    unsigned char *data = read_file(argv[1], &len);
    if (!data) {
        fprintf(stderr, "error: cannot read %s\n", argv[1]);
        return 1;
    }
    PcllArtifact art;
    int rc = pcll_open(data, len, &art);
    if (rc != PCLL_OK) return fail("open", rc);
    if (art.version < 1 || art.version > pcll_format_version()) return fail("version", PCLL_ERR_VERSION);

    size_t scratch_cap = pcll_max_scratch_len();
    unsigned char *scratch = malloc(scratch_cap);
    for (uint32_t i = 0; i < art.tensor_count; i++) {
        PcllTensorInfo t;
        rc = pcll_tensor_info(&art, i, &t);
        if (rc != PCLL_OK) return fail("tensor_info", rc);
        if (t.scratch_len > scratch_cap) return fail("scratch", PCLL_ERR_REQUEST);
        uint32_t found = 0;
        rc = pcll_find_tensor(&art, t.name, t.name_len, &found);
        if (rc != PCLL_OK || found != i) return fail("find_tensor", rc ? rc : PCLL_ERR_REQUEST);

        const void *bytes = NULL;
        size_t nbytes = 0;
        void *buf = NULL;
        size_t n = (size_t)t.numel;
        if (t.dtype == 0) {
            buf = malloc(n * 4 + 4);
            rc = pcll_decode_f32(&art, i, (float *)buf, n, scratch, scratch_cap);
            nbytes = n * 4;
        } else if (t.dtype == 1 || t.dtype == 2) {
            buf = malloc(n * 2 + 2);
            rc = t.dtype == 1 ? pcll_decode_f16(&art, i, (uint16_t *)buf, n, scratch, scratch_cap)
                              : pcll_decode_bf16(&art, i, (uint16_t *)buf, n, scratch, scratch_cap);
            nbytes = n * 2;
        } else {
            rc = pcll_raw_bytes(&art, i, (const uint8_t **)&bytes, &nbytes);
        }
        if (rc != PCLL_OK) return fail("decode", rc);
        if (buf) bytes = buf;

        char path[4096];
        snprintf(path, sizeof path, "%s/%u.bin", argv[2], i);
        FILE *f = fopen(path, "wb");
        if (!f || (nbytes && fwrite(bytes, 1, nbytes, f) != nbytes)) {
            fprintf(stderr, "error: cannot write %s\n", path);
            return 1;
        }
        fclose(f);
        free(buf);
    }
    /* Every metadata entry must be readable, and out-of-range requests must fail cleanly. */
    for (uint32_t i = 0; i < art.metadata_count; i++) {
        PcllMetaEntry e;
        rc = pcll_metadata_entry(&art, i, &e);
        if (rc != PCLL_OK) return fail("metadata_entry", rc);
    }
    PcllTensorInfo none;
    if (pcll_tensor_info(&art, art.tensor_count, &none) != PCLL_ERR_REQUEST) return fail("bounds", PCLL_ERR_REQUEST);
    if (pcll_open(NULL, 0, &art) != PCLL_ERR_NULL) return fail("null", PCLL_ERR_NULL);
    free(scratch);
    free(data);
    return 0;
}
