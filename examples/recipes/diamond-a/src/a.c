int diamond_a(void) { return 1; }
