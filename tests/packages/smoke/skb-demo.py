import skb_demo

assert skb_demo.combine(4, 2) == 402
