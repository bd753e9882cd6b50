/* a plain C library; `helper` clashes with other test modules and is renamed apart */
int helper(int x) { return x * 3; }
int triple_plus_one(int x) { return helper(x) + 1; }
