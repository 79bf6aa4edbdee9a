# owned by the splice part
