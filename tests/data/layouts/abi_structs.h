/* Structs whose layouts the engine must compute exactly as the compiler does,
 * on every ABI (tests/unit/test_layout_abi.py checks offsetof/sizeof/alignof). */
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>
#include <pthread.h>
#include <wchar.h>

#define NAME_LEN 13
#define ROWS 2
#define COLS (ROWS + 1)

enum small { S_A, S_B, S_C };
enum negative { N_MINUS = -3, N_ZERO = 0, N_PLUS = 7 };
enum big { B_LOW = 1, B_HIGH = 0x1ffffffffLL };

struct all_ints {
    char c; signed char sc; unsigned char uc;
    short s; unsigned short us;
    int i; unsigned int ui;
    long l; unsigned long ul;
    long long ll; unsigned long long ull;
    short int si; long int li; long unsigned int lui; unsigned ud; signed sd;
};

struct fixed {
    int8_t i8; uint8_t u8; int16_t i16; uint16_t u16;
    int32_t i32; uint32_t u32; int64_t i64; uint64_t u64;
    int_least8_t il8; int_fast16_t if16; uint_fast32_t uf32; intmax_t im;
    size_t sz; ptrdiff_t pd; intptr_t ip; uintptr_t up; wchar_t wc;
};

struct floats { char c; float f; char d; double dd; _Bool b; bool b2; float tail; };

struct pointers { char c; void *p; int (*fn)(int, char); const char *s; struct pointers *self; char end; };

struct enums { char c; enum small s; enum negative n; char d; enum big b; };

struct arrays {
    char name[NAME_LEN];
    unsigned char blob[5];
    uint8_t raw[3];
    int8_t small[3];
    int32_t vec[4];
    double m[ROWS][COLS];
    char names[3][7];
    short cube[2][2][3];
};

struct inner { char tag; double value; int16_t n; };
union both { uint8_t b; uint32_t w; double d; char text[11]; };

struct nested {
    char c;
    struct inner in;
    struct inner many[2];
    union both u;
    struct { int x; char y; } anon_named;
    struct { short ax; long ay; };
    union { int ua; char ub[9]; };
    struct deeper { struct inner in2; char z; } deep;
};

struct __attribute__((packed)) packed_front { char c; int i; double d; uint16_t s; };
struct packed_back { char c; int64_t q; struct inner in; } __attribute__((__packed__));
typedef struct { char c; uint32_t x __attribute__((packed)); char d; } packed_member;
struct packed_aligned { char c; int i __attribute__((aligned(8))); } __attribute__((packed));

struct aligned_member { char c; int i __attribute__((aligned(16))); char d; _Alignas(8) char e; };
struct aligned_struct { char c; } __attribute__((aligned(32)));
struct __attribute__((aligned)) aligned_max { char c; };
struct has_aligned { char c; struct aligned_struct a; char d; };

typedef uint32_t u32_a8 __attribute__((aligned(8)));
struct typedef_aligned { char c; u32_a8 x; char d; };

#pragma pack(push, 2)
struct pragma2 { char c; int i; double d; char e; };
#pragma pack(push, 1)
struct pragma1 { char c; int64_t q; };
#pragma pack(pop)
struct pragma2b { char c; double d; };
#pragma pack(pop)
struct after_pack { char c; double d; };

struct flexible { uint32_t len; char data[]; };

#if defined(__aarch64__)
struct per_arch { int32_t a; char only_arm[12]; };
#else
struct per_arch { int64_t a; char only_x86[3]; };
#endif

struct system_types { char c; struct timespec ts; pthread_mutex_t mu; time_t t; };

typedef struct tagged_s { int a; char b; } tagged_t;
struct uses_typedef { char c; tagged_t t; tagged_t arr[2]; };

struct sized { char buf[sizeof(struct inner) * 2 + _Alignof(double)]; int after[offsetof(struct inner, n)]; };

struct zero_width { char c; int :0; char d; long :0; short e; };
