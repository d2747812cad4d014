# Dry run of build.tcl under plain tclsh, with the Vivado commands replaced by mocks:
# checks the script's Tcl (syntax, control flow, the port-list parsers against files
# shaped like Vivado's instantiation template and block-design HDL) without Vivado.
# It cannot check that Vivado accepts the IP parameters; see docs/board.md.
#
#   tclsh rtl/board/build_dryrun.tcl <scratch_dir>

set here    [file normalize [file dirname [info script]]]
set scratch [file normalize [lindex $argv 0]]
file mkdir $scratch
array set props {}
set calls {}

proc mock {name} { proc $name args "lappend ::calls $name; return $name" }
foreach c {create_project create_ip create_bd_design create_bd_intf_port create_bd_port
           create_bd_cell connect_bd_intf_net connect_bd_net get_bd_pins get_bd_ports
           get_bd_intf_ports get_bd_intf_pins assign_bd_address get_bd_addr_spaces
           get_bd_addr_segs validate_bd_design save_bd_design add_files current_fileset
           current_project launch_runs wait_on_run get_runs open_run close_design get_pins
           report_timing_summary report_utilization get_ips} { mock $c }

proc set_property {args} {
  if {[lindex $args 0] eq "-dict"} {
    foreach {k v} [lindex $args 1] { set ::props([lindex $args 2],$k) $v }
  } else {
    set ::props([lindex $args 2],[lindex $args 0]) [lindex $args 1]
  }
}
proc get_property {key obj} {
  switch -- $key {
    PROGRESS { return 100% }
    PERIOD   { return 4.000 }
    SLACK    { return 0.125 }
    NAME     { return $obj }
    DIRECTORY { return $::scratch }
  }
  return $::props($obj,$key)
}
proc get_clocks {args} { return axi_aclk }
proc get_timing_paths {args} { return path }
proc generate_target {args} {}

# Files shaped like Vivado's: an instantiation template and a block design's HDL.
proc stub_ports {file} {
  set fh [open $file r]; set t [read $fh]; close $fh
  regsub -all {//[^\n]*} $t {} t
  return [regexp -all -inline {(input|output)\s+logic\s*(?:\[[^\]]*\]\s*)?(\w+)} $t]
}
set veo [open [file join $scratch xdma_0.veo] w]
puts $veo "xdma_0 your_instance_name ("
foreach {- dir name} [stub_ports [file join $here stub xdma_0.sv]] {
  puts $veo "  .${name}(${name}),  // $dir wire $name"
}
puts $veo ");"
close $veo
set bd [open [file join $scratch npu_devmem.v] w]
puts $bd "module npu_devmem (a);"
foreach {- dir name} [stub_ports [file join $here stub npu_devmem.sv]] {
  puts $bd "  (* X_INTERFACE_INFO = \"xilinx.com:interface:aximm:1.0 s_axi X\" *) $dir \[3:0\]$name;"
}
puts $bd "endmodule"
close $bd
set bit [open [file join $scratch npu_board_top.bit] w]; close $bit

proc get_files {args} {
  set pat [lindex $args end]
  switch -glob -- $pat {
    *xdma_0.veo   { return [file join $::scratch xdma_0.veo] }
    npu_devmem.v  { return [file join $::scratch npu_devmem.v] }
    default       { return $pat }
  }
}

set argv [list [file join $scratch out] 2]
source [file join $here build.tcl]
foreach need {create_ip create_bd_design launch_runs open_run} {
  if {[lsearch -exact $calls $need] < 0} { puts stderr "dry run: $need never called"; exit 1 }
}
# The port check must fail on a difference: one port renamed in the template.
proc fail {msg} { error $msg }
set bad [file join $scratch bad.veo]
set fh [open [file join $scratch out xdma_0_ports.v] r]; set t [read $fh]; close $fh
set fh [open $bad w]; puts -nonewline $fh [string map {usr_irq_ack usr_irq_ackn} $t]; close $fh
if {![catch {check_ports xdma_0 $bad [file join $here stub xdma_0.sv]} msg]
    || ![string match "*not generated {usr_irq_ack}, not in the stub {usr_irq_ackn}*" $msg]} {
  puts stderr "dry run: a renamed port was not reported: $msg"
  exit 1
}
puts "build_dryrun: build.tcl ran to the end with mocked Vivado ([llength $calls] Vivado calls)"
