int diamond_a(void);
int diamond_c(void) { return diamond_a() + 100; }
