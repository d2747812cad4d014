# Builds the NPU bitstream for the AMD/Xilinx Alveo U55C (xcu55c-fsvh2892-2L-e):
# project, XDMA IP (AXI Bridge mode), the HBM device-memory block design, the RTL of
# rtl/, rtl/prim/ and rtl/board/ with npu_board_top as the top, the constraints of
# npu_board_u55c.xdc, synthesis, implementation and the bitstream.
#
#   vivado -mode batch -source rtl/board/build.tcl [-tclargs <out_dir> [<jobs>]]
#
# Output: <out_dir> (default build/u55c next to the repository root) with the project,
# npu_board_top.bit, and the timing and utilisation reports.
#
# UNTESTED: Vivado is not available where this script was written; it has never been
# run (docs/board.md says what has and has not been run). It therefore checks what it
# can itself and stops with a clear error instead of building something else:
#   - every IP property it sets is read back (a name or value Vivado did not take fails);
#   - the port lists of the generated XDMA IP and HBM block design must equal the
#     black-box stubs in rtl/board/stub that lint and open-source synthesis use;
#   - the run must meet timing (WNS >= 0 on setup and hold) before a bitstream is kept.
# IP parameter names follow PG195 (XDMA 4.1, AXI Bridge mode) and PG276 (HBM); written
# against Vivado 2023.2.

set root     [file normalize [file join [file dirname [info script]] .. ..]]
set out_dir  [file normalize [expr {[llength $argv] > 0 ? [lindex $argv 0] : [file join $root build u55c]}]]
set jobs     [expr {[llength $argv] > 1 ? [lindex $argv 1] : 4}]
set part     xcu55c-fsvh2892-2L-e
set rtl      [file join $root rtl]

proc fail {msg} {
  puts stderr "build.tcl: $msg"
  exit 1
}

# Sets CONFIG properties on an IP or block-design cell and reads each back.
proc configure {obj props} {
  set_property -dict $props $obj
  foreach {key want} $props {
    set got [get_property $key $obj]
    if {![string equal -nocase $got $want]} {
      fail "[get_property NAME $obj]: $key is '$got' after setting '$want'"
    }
  }
}

# Port names declared in a Verilog/SystemVerilog file (ANSI or non-ANSI headers, with
# or without attributes); comments are dropped first.
proc port_names {file} {
  set fh [open $file r]
  set text [read $fh]
  close $fh
  regsub -all {/\*.*?\*/} $text {} text
  regsub -all {//[^\n]*} $text {} text
  regsub -all {\(\*.*?\*\)} $text {} text
  set names {}
  foreach {- name} [regexp -all -inline \
      {\m(?:input|output|inout)\M\s+(?:wire\s+|logic\s+|reg\s+)?(?:signed\s+)?(?:\[[^\]]*\]\s*)?(\w+)} $text] {
    lappend names $name
  }
  return [lsort -unique $names]
}

# The generated IP or block design must have exactly the stub's ports.
proc check_ports {what generated stub} {
  set gen [port_names $generated]
  set ref [port_names $stub]
  set missing {}
  set extra {}
  foreach p $ref { if {[lsearch -exact $gen $p] < 0} { lappend missing $p } }
  foreach p $gen { if {[lsearch -exact $ref $p] < 0} { lappend extra $p } }
  if {[llength $missing] || [llength $extra]} {
    fail "$what: ports differ from [file tail $stub]: not generated {$missing}, not in the stub {$extra}"
  }
  puts "build.tcl: $what: [llength $gen] ports, same as [file tail $stub]"
}

file mkdir $out_dir
create_project npu_u55c [file join $out_dir project] -part $part -force
set_property target_language Verilog [current_project]

# ---------------------------------------------------------------- XDMA (PCIe bridge)
create_ip -name xdma -vendor xilinx.com -library ip -version 4.1 -module_name xdma_0
set xdma [get_ips xdma_0]
configure $xdma [list \
  CONFIG.functional_mode            {AXI_Bridge} \
  CONFIG.mode_selection             {Advanced} \
  CONFIG.device_port_type           {PCI_Express_Endpoint_device} \
  CONFIG.pl_link_cap_max_link_width {X16} \
  CONFIG.pl_link_cap_max_link_speed {8.0_GT/s} \
  CONFIG.ref_clk_freq               {100_MHz} \
  CONFIG.axi_data_width             {512_bit} \
  CONFIG.axisten_freq               {250} \
  CONFIG.axi_addr_width             {64} \
  CONFIG.en_gt_selection            {true} \
  CONFIG.pcie_blk_locn              {PCIE4C_X1Y0} \
  CONFIG.select_quad                {GTY_Quad_227} \
  CONFIG.pf0_device_id              {9038} \
  CONFIG.pf0_bar0_enabled           {true} \
  CONFIG.pf0_bar0_64bit             {false} \
  CONFIG.pf0_bar0_prefetchable      {false} \
  CONFIG.pf0_bar0_scale             {Kilobytes} \
  CONFIG.pf0_bar0_size              {4} \
  CONFIG.pciebar2axibar_0           {0x0000000000000000} \
  CONFIG.pf0_bar2_enabled           {true} \
  CONFIG.pf0_bar2_64bit             {true} \
  CONFIG.pf0_bar2_scale             {Kilobytes} \
  CONFIG.pf0_bar2_size              {64} \
  CONFIG.bar_indicator              {BAR_3:2} \
  CONFIG.en_axi_slave_if            {true} \
  CONFIG.axibar_num                 {1} \
  CONFIG.axibar_0                   {0x0000000000000000} \
  CONFIG.axibar_highaddr_0          {0x000000FFFFFFFFFF} \
  CONFIG.axibar2pciebar_0           {0x0000000000000000} \
  CONFIG.c_s_axi_supports_narrow_burst {false} \
  CONFIG.c_s_axi_num_read           {32} \
  CONFIG.c_s_axi_num_write          {32} \
  CONFIG.pf0_interrupt_pin          {NONE} \
  CONFIG.pf0_msi_enabled            {false} \
  CONFIG.pf0_msix_enabled           {true} \
  CONFIG.pf0_msix_impl_locn         {Internal} \
  CONFIG.pf0_msix_cap_table_size    {007} \
  CONFIG.xdma_num_usr_irq           {7} \
]
# What each setting is for (docs/board.md §1):
# - BAR0: 4 KiB, 32-bit, non-prefetchable, translated to AXI address 0, so a BAR0 offset
#   is the CSR offset (npu_board_bar0 takes the low 12 bits).
# - BAR2-3: 64-bit, the bridge's own registers and the MSI-X table and PBA (internal
#   MSI-X, 8 entries; vectors 0..6 are INT_CAUSE 0..6), kept out of BAR0 for vfio-pci.
# - AXI slave bridge: one AXI BAR over [0, 2^40) with identity translation, so an AXI
#   address of m_axi_host is the PCIe bus address = the IOVA VFIO mapped; 32 outstanding
#   reads cover the NPU's MaxReadBursts (16).
# - Gen3 x16 with a 512-bit AXI at 250 MHz: axi_aclk is the NPU's clk_i.
generate_target {instantiation_template synthesis} $xdma
set veo [lindex [get_files -of_objects [get_files xdma_0.xci] *xdma_0.veo] 0]
if {$veo eq ""} { fail "xdma_0: no instantiation template generated" }
# The template lists ports as `.name(name)`; turn it into a header port_names can read.
set fh [open $veo r]; set tmpl [read $fh]; close $fh
set hdr [file join $out_dir xdma_0_ports.v]
set fh [open $hdr w]
foreach {- name dir} [regexp -all -inline {\.(\w+)\s*\(\s*\w+\s*\)\s*,?\s*//\s*(input|output)} $tmpl] {
  puts $fh "$dir $name;"
}
close $fh
check_ports xdma_0 $hdr [file join $rtl board stub xdma_0.sv]

# ---------------------------------------------------------------- device memory (HBM)
# Block design npu_devmem: AXI SmartConnect (the NPU's 512-bit AXI4 at 250 MHz onto the
# HBM's 256-bit AXI3 port, with the clock crossing) in front of HBM stack 0, pseudo
# channel 0 (512 MiB, more than DevMemMiB = 256) without the HBM switch. The HBM AXI,
# APB and reference clocks all run from the board's 100 MHz clock: enough for bring-up
# (3.2 GB/s), not for the DDR4/HBM figures of the timing model.
create_bd_design npu_devmem
set s_axi [create_bd_intf_port -mode Slave -vlnv xilinx.com:interface:aximm_rtl:1.0 s_axi]
configure $s_axi [list \
  CONFIG.PROTOCOL AXI4 CONFIG.DATA_WIDTH 512 CONFIG.ADDR_WIDTH 40 CONFIG.ID_WIDTH 4 \
  CONFIG.FREQ_HZ 250000000 CONFIG.HAS_LOCK 0 CONFIG.HAS_CACHE 0 CONFIG.HAS_PROT 0 \
  CONFIG.HAS_QOS 0 CONFIG.HAS_REGION 0 CONFIG.NUM_READ_OUTSTANDING 32 \
  CONFIG.NUM_WRITE_OUTSTANDING 32]
set aclk [create_bd_port -dir I -type clk -freq_hz 250000000 aclk]
set_property CONFIG.ASSOCIATED_BUSIF s_axi $aclk
create_bd_port -dir I -type rst aresetn
create_bd_intf_port -mode Slave -vlnv xilinx.com:interface:diff_clock_rtl:1.0 hbm_refclk
set_property CONFIG.FREQ_HZ 100000000 [get_bd_intf_ports hbm_refclk]
create_bd_port -dir O hbm_cattrip

set ibuf [create_bd_cell -type ip -vlnv xilinx.com:ip:util_ds_buf ibuf_hbm_refclk]
configure $ibuf [list CONFIG.C_BUF_TYPE {IBUFDS}]
set bufg [create_bd_cell -type ip -vlnv xilinx.com:ip:util_ds_buf bufg_hbm_clk]
configure $bufg [list CONFIG.C_BUF_TYPE {BUFG}]
set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset hbm_rst]
set sc [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect sc]
configure $sc [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {1} CONFIG.NUM_CLKS {2}]
set hbm [create_bd_cell -type ip -vlnv xilinx.com:ip:hbm hbm]
configure $hbm [list \
  CONFIG.USER_HBM_DENSITY      {8GB} \
  CONFIG.USER_HBM_STACK        {1} \
  CONFIG.USER_APB_EN           {false} \
  CONFIG.USER_SWITCH_ENABLE_00 {FALSE} \
  CONFIG.USER_HBM_REF_CLK_0    {100} \
  CONFIG.USER_AXI_CLK_FREQ     {100} \
  CONFIG.USER_MC_ENABLE_00     {TRUE} \
  CONFIG.USER_MC_ENABLE_01     {FALSE} \
  CONFIG.USER_MC_ENABLE_02     {FALSE} \
  CONFIG.USER_MC_ENABLE_03     {FALSE} \
  CONFIG.USER_MC_ENABLE_04     {FALSE} \
  CONFIG.USER_MC_ENABLE_05     {FALSE} \
  CONFIG.USER_MC_ENABLE_06     {FALSE} \
  CONFIG.USER_MC_ENABLE_07     {FALSE} \
  CONFIG.USER_SAXI_00          {true} \
  CONFIG.USER_SAXI_01          {false} \
]

connect_bd_intf_net [get_bd_intf_ports hbm_refclk] [get_bd_intf_pins ibuf_hbm_refclk/CLK_IN_D]
connect_bd_net [get_bd_pins ibuf_hbm_refclk/IBUF_OUT] [get_bd_pins bufg_hbm_clk/BUFG_I]
set hclk [get_bd_pins bufg_hbm_clk/BUFG_O]
connect_bd_net $hclk [get_bd_pins hbm/HBM_REF_CLK_0] [get_bd_pins hbm/APB_0_PCLK] \
  [get_bd_pins hbm/AXI_00_ACLK] [get_bd_pins sc/aclk1] [get_bd_pins hbm_rst/slowest_sync_clk]
connect_bd_net [get_bd_ports aresetn] [get_bd_pins sc/aresetn] [get_bd_pins hbm_rst/ext_reset_in]
connect_bd_net [get_bd_pins hbm_rst/peripheral_aresetn] [get_bd_pins hbm/APB_0_PRESET_N] \
  [get_bd_pins hbm/AXI_00_ARESET_N]
connect_bd_net [get_bd_ports aclk] [get_bd_pins sc/aclk]
connect_bd_intf_net [get_bd_intf_ports s_axi] [get_bd_intf_pins sc/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins sc/M00_AXI] [get_bd_intf_pins hbm/SAXI_00]
connect_bd_net [get_bd_pins hbm/DRAM_0_STAT_CATTRIP] [get_bd_ports hbm_cattrip]
# Device-physical address 0 is the start of pseudo channel 0.
assign_bd_address -offset 0x0000000000 -range 0x10000000 \
  -target_address_space [get_bd_addr_spaces s_axi] [get_bd_addr_segs hbm/SAXI_00/HBM_MEM00] -force
validate_bd_design
save_bd_design
set bd_file [get_files npu_devmem.bd]
generate_target all $bd_file
set bd_top [lindex [get_files -of_objects $bd_file npu_devmem.v] 0]
if {$bd_top eq ""} { fail "npu_devmem: no HDL generated for the block design" }
check_ports npu_devmem $bd_top [file join $rtl board stub npu_devmem.sv]

# ---------------------------------------------------------------- RTL and constraints
# Packages first; the stubs in rtl/board/stub are for lint only (Vivado has the real IP).
set sources [concat \
  [lsort [glob [file join $rtl *_pkg.sv]]] \
  [lsort [glob [file join $rtl prim *.sv]]] \
  [lsort [lsearch -all -inline -not [glob [file join $rtl *.sv]] *_pkg.sv]] \
  [lsort [glob [file join $rtl board *.sv]]]]
add_files -norecurse $sources
set_property file_type SystemVerilog [get_files $sources]
set_property include_dirs [list [file join $rtl prim]] [current_fileset]
set_property top npu_board_top [current_fileset]
add_files -fileset constrs_1 -norecurse [file join $rtl board npu_board_u55c.xdc]

# ---------------------------------------------------------------- build
launch_runs synth_1 -jobs $jobs
wait_on_run synth_1
if {[get_property PROGRESS [get_runs synth_1]] ne "100%"} { fail "synthesis failed: see [get_property DIRECTORY [get_runs synth_1]]" }

# The NPU runs on the bridge's axi_aclk; it must be the 250 MHz (4.000 ns) that the NPU
# is specified and timed for (docs/device.md §2.2).
open_run synth_1
set npu_clk [get_clocks -of_objects [get_pins u_xdma/axi_aclk]]
if {[llength $npu_clk] != 1 || abs([get_property PERIOD $npu_clk] - 4.0) > 0.001} {
  fail "axi_aclk is not one 4.000 ns clock: '$npu_clk' [get_property PERIOD $npu_clk]"
}
close_design

launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} { fail "implementation failed: see [get_property DIRECTORY [get_runs impl_1]]" }

open_run impl_1
report_timing_summary -file [file join $out_dir timing_summary.rpt]
report_utilization -hierarchical -file [file join $out_dir utilization.rpt]
set wns [get_property SLACK [get_timing_paths -setup -max_paths 1]]
set whs [get_property SLACK [get_timing_paths -hold -max_paths 1]]
if {$wns < 0 || $whs < 0} {
  fail "timing not met: WNS $wns ns, WHS $whs ns (see timing_summary.rpt); no bitstream kept"
}
set bit [lindex [glob -nocomplain [file join [get_property DIRECTORY [get_runs impl_1]] *.bit]] 0]
if {$bit eq ""} { fail "no bitstream written" }
file copy -force $bit [file join $out_dir npu_board_top.bit]
puts "build.tcl: [file join $out_dir npu_board_top.bit] (WNS $wns ns, WHS $whs ns)"
