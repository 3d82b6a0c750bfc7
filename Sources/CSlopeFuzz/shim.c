// (Declarations only: see include/CSlopeFuzz.h.)
