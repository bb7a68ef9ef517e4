# Sourced by cli_campaign.sh and kill_campaign.sh: the tiny catalog and
# orders both campaigns run their commands on.
#   make_catalog FILE N AISLES   N products p0..p(N-1), names from 8 words; an
#                                aisle column with AISLES > 0 aisles
#   make_orders FILE N K         N orders of K items each among p0..p39
make_catalog() {
  local w=(milk bread apple cheese soap rice tea jam) i
  {
    if [ "$3" -gt 0 ]; then echo "product_id,product_name,aisle"; else echo "product_id,product_name"; fi
    for i in $(seq 0 $(($2 - 1))); do
      if [ "$3" -gt 0 ]; then echo "p$i,${w[i % 8]} ${w[(i / 8) % 8]} $i,aisle$((i % $3))"
      else echo "p$i,${w[i % 8]} ${w[(i / 8) % 8]} $i"; fi
    done
  } > "$1"
}

make_orders() {
  local b k
  {
    echo "order_id,product_id"
    for b in $(seq 0 $(($2 - 1))); do
      for k in $(seq 0 $(($3 - 1))); do echo "o$b,p$(((b * 7 + k * 13) % 40))"; done
    done
  } > "$1"
}
