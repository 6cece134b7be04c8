int diamond_a(void);
int diamond_b(void) { return diamond_a() + 10; }
