#include <stdio.h>
int diamond_b(void);
int diamond_c(void);
int main(void)
{
        printf("diamond: b=%d c=%d\n", diamond_b(), diamond_c());
        return 0;
}
